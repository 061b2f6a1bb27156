"""Korean backchannels: the short acknowledgements a caller says while listening ("네", "예", "음").

Said over the agent's reply they mean "go on", not "stop": the reply resumes and no caller turn starts.
"""

from __future__ import annotations

import re

# Whole-utterance acknowledgements and fillers as ASR writes them (Vosk writes 네/예/응, sometimes doubled).
BACKCHANNEL_WORDS = frozenset({
    "네", "넵", "예", "응", "어", "아", "음", "으음", "흠", "에", "엉", "웅", "그래요", "그렇죠", "그쵸", "맞아요",
    "아하", "아네", "네네", "예예", "알겠어요", "알겠습니다", "좋아요", "오케이", "아아", "어어",
    # How a short 네/예 over the phone band often comes back from the recogniser (seen with Vosk: 례).
    "례", "내", "녜", "넹", "애", "얘", "네에", "예에",
})
_PUNCT = re.compile(r"[\s.,!?~…·\-]+")


def words(text: str) -> list[str]:
    return [w for w in _PUNCT.split(text.strip()) if w]


def is_backchannel(text: str, *, max_words: int = 3) -> bool:
    """True for "네", "네 네", "아 네", "음…"; False for anything that says more, and for empty text."""
    found = words(text)
    return bool(found) and len(found) <= max_words and all(w in BACKCHANNEL_WORDS for w in found)


def says_something(text: str) -> bool:
    """Words that are more than an acknowledgement: a real interruption."""
    return bool(words(text)) and not is_backchannel(text)


def is_short_sound(text: str, *, max_syllables: int = 2) -> bool:
    """One or two syllables: what a short burst that resumed the reply (a cough, "네") may be written as."""
    squashed = "".join(words(text))
    return 0 < len(squashed) <= max_syllables
