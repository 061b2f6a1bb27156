"""What the greeting must tell a caller, checked wherever a greeting comes from (packs, controller.greeting):
that an AI answers, and that the call is kept, in words that match what the code keeps. A greeting that
says the call *is* recorded (녹음됩니다) while recording is off is refused; with recording on, it must say so.
"""

from __future__ import annotations

import re

AI_DISCLOSURE_WORDS = ("인공지능", "AI", "자동 응답")
KEPT_WORDS = ("녹음", "기록")
_RECORDED = re.compile(r"녹음(?:됩니다|되고\s*있|하고\s*있|합니다|중)")


def greeting_problem(text: str, *, recording: bool | None = None) -> str | None:
    """Why `text` cannot be the greeting, or None. `recording`: whether audio is recorded (None: either)."""
    if not any(w in text for w in AI_DISCLOSURE_WORDS):
        return "must disclose that the caller is talking to an AI (인공지능)"
    if not any(w in text for w in KEPT_WORDS):
        return "must tell the caller that the call is kept (기록) or recorded (녹음)"
    if recording is True and "녹음" not in text:
        return "must tell the caller that the call is recorded (녹음): recording is on"
    if recording is False and _RECORDED.search(text):
        return "says the call is recorded (녹음) but recording is off (controller.recording_dir is empty)"
    return None
