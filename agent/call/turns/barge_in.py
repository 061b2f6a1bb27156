"""Barge-in that a cough cannot kill: pause at once, confirm, then break or resume (pure; time passed in).

On caller speech onset while interruptible agent audio is queued, the barge-in is *armed* and the reply paused
(`uuid_fileman … pause`; between two chunks there is no file to pause, and the arming still counts): the
caller is heard within one event. The interruption is confirmed when the caller's voice reaches the worker's
confirmation length (its `speech_continuing`) or when the words are more than a backchannel; then the
turn is cancelled and the audio flushed (`uuid_break … all`). A burst that never became speech
(`speech_dropped`), a short pause in a short utterance, a backchannel transcript, or a pause held too long
with nothing confirmed resumes the same file where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from agent.call.turns.backchannel import says_something


class Action(Enum):
    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"
    BREAK = "break"


@dataclass(frozen=True)
class BargeInSettings:
    # A caller who stops (speech_paused/dropped) after less voiced audio than this was not interrupting.
    confirm_ms: int = 500
    max_pause_s: float = 1.2  # a pause never outlasts this without a confirmation


class BargeIn:
    def __init__(self, settings: BargeInSettings | None = None):
        self.settings = settings or BargeInSettings()
        self.armed_at: float | None = None
        self.utterance: int | None = None
        self.resumed = 0
        self.broken = 0

    @property
    def armed(self) -> bool:
        return self.armed_at is not None

    def on_onset(self, utterance: int, now: float, *, interruptible_audio: bool) -> Action:
        if self.armed or not interruptible_audio:
            return Action.NONE
        self.armed_at, self.utterance = now, utterance
        return Action.PAUSE

    def on_continuing(self, utterance: int, voiced_ms: float) -> Action:
        """The worker's `speech_continuing` is the confirmation: it counts the caller's voice against its own
        `worker.vad.barge_in_confirm_ms` on frames of real voice (a backchannel's fading tail left out), which
        `voiced_ms` (every frame the VAD called speech) cannot be compared with here."""
        return self._break() if self.armed else Action.NONE

    def on_words(self, text: str) -> Action:
        """A partial transcript while armed."""
        if not self.armed:
            return Action.NONE
        return self._break() if says_something(text) else Action.NONE

    def on_final(self, text: str) -> Action:
        if not self.armed:
            return Action.NONE
        return self._break() if says_something(text) else self._resume()

    def on_short_speech(self, utterance: int, voiced_ms: float) -> Action:
        """`speech_paused` or `speech_dropped`: the caller stopped before the confirmation length."""
        if self.armed and voiced_ms < self.settings.confirm_ms:
            return self._resume()
        return Action.NONE

    def tick(self, now: float) -> Action:
        if self.armed_at is not None and now - self.armed_at >= self.settings.max_pause_s:
            return self._resume()
        return Action.NONE

    def reset(self) -> None:
        """The audio ended another way (break for a transfer, the call went): forget the pause."""
        self.armed_at = None

    def _break(self) -> Action:
        self.armed_at = None
        self.broken += 1
        return Action.BREAK

    def _resume(self) -> Action:
        self.armed_at = None
        self.resumed += 1
        return Action.RESUME
