"""Routes the speech worker's messages (CUSTOM mod_audio_fork::*, freeswitch.md §3.3) to turn-taking decisions.

The worker's vocabulary: speech_onset / speech_started / speech_continuing / speech_paused / speech_dropped /
speech_ended, turn_preview / turn_resumed, heartbeat, asr_error, and transcriptions (partial and final, the
final with its end-of-turn decision `eot`). See docs/architecture.md "Turn-taking".
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from agent.call.actions.listen import ForkLiveness
from agent.call.actions.say import Voice
from agent.call.record import CallRecord
from agent.call.turn import Turn
from agent.call.turns.backchannel import is_backchannel, is_short_sound
from agent.call.turns.barge_in import Action, BargeIn
from agent.call.turns.idle import IdlePolicy
from agent.config import ControllerConfig

log = logging.getLogger(__name__)

ANSWERED_KEPT = 8
REPROMPT = "죄송합니다, 잘 듣지 못했습니다. 다시 한 번 말씀해 주시겠어요?"


class ForkHost(Protocol):
    """What the router needs from its call."""

    cfg: ControllerConfig
    state: str
    voice: Voice
    record: CallRecord
    barge: BargeIn
    idle: IdlePolicy
    liveness: ForkLiveness
    turn: Turn | None
    preview: Turn | None

    def clock(self) -> float: ...
    def act(self, action: Action, why: str, **detail: Any) -> None: ...
    def start_turn(self, data: dict[str, Any], *, held: bool = False) -> Turn: ...
    def cancel_turn(self) -> None: ...
    def escalate(self, reason: str, summary: str = "", priority: int = 5, *, failure: bool = False) -> None: ...
    def worker_lost(self, reason: str) -> None: ...


def _same_words(a: str, b: str) -> bool:
    squash = re.compile(r"[\s.,!?~…]+")
    return squash.sub("", a) == squash.sub("", b)


def _utterance(body: dict[str, Any]) -> int:
    value = body.get("utterance")
    return value if isinstance(value, int) else -1


class ForkEvents:
    def __init__(self, host: ForkHost):
        self.host = host
        self.connected = False
        self.caller_speaking = False
        self.asr_errors = 0
        self._final_due_since: float | None = None  # speech ended, final transcript not here yet
        self._resumed_utterance = -1  # a burst too short to interrupt: the reply went on
        self._asr_filler_said = False
        # Utterances whose held reply played on speech_ended, before their final → the words it answered.
        self._answered_early: dict[int, str] = {}

    # routing ------------------------------------------------------------------------------------------

    def on_custom(self, subclass: str, body: dict[str, Any]) -> None:
        h = self.host
        if subclass == "mod_audio_fork::connect":
            self.connected = True
            h.liveness.on_connect(h.clock())
            h.record.event("fork_connected")
        elif subclass in ("mod_audio_fork::connect_failed", "mod_audio_fork::error",
                          "mod_audio_fork::disconnect"):
            if h.state == "active":
                h.worker_lost(f"{subclass.split('::')[1]}: {body.get('reason', '')}".strip(": "))
        elif subclass == "mod_audio_fork::buffer_overrun":
            h.record.event("fork_buffer_overrun")
        elif subclass == "mod_audio_fork::transcription":
            if body.get("final", True):
                self._on_final(body)
            else:
                self._on_partial(str(body.get("text", "")))
        elif subclass == "mod_audio_fork::json":
            self._on_json(str(body.get("event", "")), body)

    def _on_json(self, kind: str, body: dict[str, Any]) -> None:
        h, now = self.host, self.host.clock()
        utterance = _utterance(body)
        voiced = float(body.get("voiced_ms") or 0)
        if kind == "heartbeat":
            h.liveness.on_heartbeat(now, float(body.get("audio_ms") or 0))
        elif kind == "speech_onset":
            h.idle.activity(now)
            self._on_onset(utterance, now)
        elif kind == "speech_started":
            self.caller_speaking = True
            h.idle.activity(now)
            if not h.barge.armed:  # no onset came first (e.g. the agent was silent): one may be due now
                self._on_onset(utterance, now)
        elif kind == "speech_continuing":
            self._on_continuing(utterance, voiced)
        elif kind in ("speech_paused", "speech_dropped"):
            if kind == "speech_dropped":
                self.caller_speaking = False
            action = h.barge.on_short_speech(utterance, voiced)
            if action is not Action.NONE:
                h.act(action, kind, voiced_ms=voiced)
            if action is Action.RESUME:
                self._resumed_utterance = utterance
        elif kind == "speech_ended":
            self.caller_speaking = False
            self._final_due_since = now
            self._asr_filler_said = False
            self._release_on_end(utterance, body)
        elif kind == "turn_preview":
            self._on_preview(utterance, str(body.get("text", "")).strip(), body)
        elif kind == "turn_resumed":
            self._drop_preview(utterance)
        elif kind == "asr_error":
            self._on_asr_error(body)

    # barge-in -----------------------------------------------------------------------------------------

    def _on_onset(self, utterance: int, now: float) -> None:
        h = self.host
        if h.state != "active":
            return
        playout = h.voice.playout
        action = h.barge.on_onset(utterance, now, interruptible_audio=playout.audio_queued
                                  and playout.interruptible_now)
        if action is Action.PAUSE:
            paused = h.voice.pause()  # between two chunks there is no file to pause; still armed
            h.record.event("barge_in_paused", utterance=utterance, paused=paused)

    def _on_continuing(self, utterance: int, voiced_ms: float) -> None:
        h = self.host
        action = h.barge.on_continuing(utterance, voiced_ms)
        playout = h.voice.playout
        if action is Action.NONE and h.state == "active" and playout.audio_queued and playout.interruptible_now:
            action = Action.BREAK  # the reply started after the caller did: they are talking over it
        if action is not Action.NONE:
            h.act(action, "voiced", voiced_ms=voiced_ms)
        elif h.turn is not None and not h.turn.done and not h.turn.has_audio and h.state == "active":
            # The caller talks on over a reply not yet audible: it answers words they have moved past.
            h.cancel_turn()
            h.record.event("barge_in", why="before_audio", voiced_ms=voiced_ms)

    def _on_partial(self, text: str) -> None:
        action = self.host.barge.on_words(text)
        if action is not Action.NONE:
            self.host.act(action, "words")

    # the end of a caller turn -------------------------------------------------------------------------

    def _on_preview(self, utterance: int, text: str, body: dict[str, Any]) -> None:
        h = self.host
        if not h.cfg.preemptive_reply or h.state != "active" or not text or h.barge.armed or is_backchannel(text):
            return
        if h.preview is not None:
            h.preview.discard()
        h.start_turn({**body, "text": text, "utterance": utterance, "source": "asr"}, held=True)

    def _drop_preview(self, utterance: int) -> None:
        h = self.host
        if h.preview is not None and (utterance < 0 or h.preview.utterance == utterance):
            h.preview.discard()
            h.preview = None

    def _release_on_end(self, utterance: int, body: dict[str, Any]) -> None:
        """The end of turn is decided on the very words a held reply was prepared from: it plays now. The final
        pass (~100 ms on Vosk, seconds on a busy machine) only confirms words the decision has already read."""
        h, preview = self.host, self.host.preview
        text = body.get("text")
        if preview is None or preview.discarded or preview.utterance != utterance or not isinstance(text, str) \
                or not _same_words(preview.text, text) or h.state != "active" or h.barge.armed \
                or h.voice.playout.audio_queued:
            return  # anything less certain waits for the final, as before
        h.preview = None
        h.cancel_turn()
        h.turn = preview
        self._answered_early[utterance] = text
        while len(self._answered_early) > ANSWERED_KEPT:  # a final the worker dropped never comes
            del self._answered_early[min(self._answered_early)]
        self._final_due_since = None
        preview.release({**body, "asr_wait_ms": 0})  # the reply waited for no ASR pass; its words stay the preview's

    def _on_final(self, data: dict[str, Any]) -> None:
        h, now = self.host, self.host.clock()
        text = str(data.get("text", "")).strip()
        self.caller_speaking = False
        self._final_due_since = None
        h.idle.activity(now)
        self.asr_errors = 0
        answered = self._answered_early.pop(_utterance(data), None)
        if answered is not None:
            # Already answered from the decision's transcript: the final is kept, never a second turn (nor a
            # "words over the reply" break of the answer to these very words).
            h.record.event("final_after_reply", utterance=data.get("utterance"), asr_ms=data.get("asr_ms"),
                           same_words=_same_words(text, answered), text=text)
            return
        if h.barge.armed:
            action = h.barge.on_final(text)
            h.act(action, "backchannel" if action is Action.RESUME else "words")
            if action is Action.RESUME:
                self._drop_preview(-1)
                return
        elif h.voice.playout.audio_queued and (is_backchannel(text) or (
                data.get("utterance") == self._resumed_utterance and is_short_sound(text))):
            h.record.event("backchannel", text=text)  # "네" over the reply: go on, no new turn
            self._drop_preview(-1)
            return
        elif h.voice.playout.audio_queued and h.voice.playout.interruptible_now and text:
            h.act(Action.BREAK, "words")  # words over the reply that no onset armed: stop it all the same
        if not text or h.state != "active":
            self._drop_preview(-1)
            return
        preview = h.preview
        h.preview = None
        if preview is not None and not preview.discarded and preview.utterance == data.get("utterance") \
                and _same_words(preview.text, text):
            h.cancel_turn()
            h.turn = preview
            preview.release(data)
            return
        if preview is not None:
            preview.discard()
        h.start_turn(data)

    def _on_asr_error(self, body: dict[str, Any]) -> None:
        h = self.host
        answered = self._answered_early.pop(_utterance(body), None) is not None
        h.record.event("asr_error", reason=body.get("reason", ""), retryable=body.get("retryable"),
                       **({"answered": True} if answered else {}))
        if answered:
            return  # its reply is already playing: nothing to ask again
        self.asr_errors += 1
        self._final_due_since = None
        if h.state != "active":
            return
        if self.asr_errors >= 2 or not body.get("retryable", False):
            h.escalate("asr_failed", failure=True)
        else:
            h.voice.say_prompt(REPROMPT)

    # deadlines ----------------------------------------------------------------------------------------

    def tick(self, now: float, started: float) -> None:
        h = self.host
        if not self.connected:
            if now - started > h.cfg.fork_connect_timeout_s:
                h.worker_lost("no connect from the worker")
            return
        reason = h.liveness.lost(now)
        if reason is not None:
            h.worker_lost(reason)
            return
        due = self._final_due_since
        if due is not None and not self._asr_filler_said and now - due >= h.cfg.filler_after_s \
                and not h.voice.playout.audio_queued:
            # The recogniser is slow: say so rather than leave the caller in silence.
            self._asr_filler_said = True
            h.record.event("slow_step_filler", step="asr")
            h.voice.say_prompt(h.cfg.slow_filler, kind="filler")
