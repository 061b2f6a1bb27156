"""One caller turn: transcript → dialog events → speakable chunks → TTS → queued playbacks, with its timings.

Latency parts stored per agent turn (docs/benchmarks.md defines them): dialog_ms (transcript in → first
speakable text), tts_ms (→ first chunk written), first_audio_ms (→ PLAYBACK_START), and overhead_ms: the
controller's own time, i.e. transcript in → first playback command sent, minus time spent inside the engines.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import gevent

from agent.call.threads import call_in_thread, iterate_in_thread
from agent.dialog.policy import EndCall, Escalate, Filler, Say, ToolUsed
from agent.store.calls import now_utc

if TYPE_CHECKING:
    from agent.call.session import CallSession

log = logging.getLogger(__name__)

TTS_TIMEOUT_S = 10.0
PLAYOUT_SLACK_S = 5.0


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 2)


class Turn:
    def __init__(self, session: CallSession, data: dict[str, Any], t_in: float):
        self.session = session
        self.data = data
        self.t_in = t_in
        self.cancelled = False
        self.greenlet: gevent.Greenlet | None = None
        self.handle = session.new_handle("reply")
        self.t_first_say: float | None = None
        self.t_first_chunk: float | None = None
        self.t_first_queued: float | None = None
        self.engine_ms = 0.0  # time inside the policy and TTS before the first playback is queued
        self._says = 0
        self.done = False

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        self.greenlet = gevent.getcurrent()
        s, data = self.session, self.data
        text = str(data["text"]).strip()
        s.record.turn(
            s.record.next_turn_seq(), "caller", text, started_at=now_utc(), source=data.get("source", "asr"),
            engine=data.get("engine"), eos_wait_ms=data.get("eos_wait_ms"), asr_ms=data.get("asr_ms"),
            detail={k: data.get(k) for k in ("utterance", "start", "end", "asr_wait_ms")},
        )
        agent_seq = s.record.next_turn_seq()
        started_at = now_utc()
        outcome: Escalate | EndCall | None = None
        tools: list[dict[str, Any]] = []
        try:
            outcome = self._converse(text, tools)
        except gevent.Timeout:
            log.warning("call %s: dialog or TTS timed out", s.uuid)
            s.escalate("agent_timeout", failure=True)
        except gevent.GreenletExit:
            raise
        except Exception:  # noqa: BLE001 - a failed turn must end in a human, never in dead air
            log.exception("call %s: turn failed", s.uuid)
            s.escalate("agent_error", failure=True)
        finally:
            self.handle.synthesis_done = True
            s.check_finished(self.handle)
            self._record(agent_seq, started_at, tools)
            self.done = True
        if isinstance(outcome, Escalate):
            s.escalate(outcome.reason, outcome.summary, outcome.priority)
        elif isinstance(outcome, EndCall):
            s.hang_up()

    def _converse(self, text: str, tools: list[dict[str, Any]]) -> Escalate | EndCall | None:
        s = self.session
        outcome: Escalate | EndCall | None = None
        events = s.conv.respond(text, self.data.get("source", "asr"))
        try:
            for event, ms in iterate_in_thread(events, timeout=s.cfg.turn_timeout_s):
                if self.t_first_queued is None:
                    self.engine_ms += ms
                if self.cancelled:
                    break
                if isinstance(event, Say):
                    self._speak(event.text)
                elif isinstance(event, Filler):
                    # Covers a slow tool only while the line is silent; never queued behind real speech.
                    if not s.playout.audio_queued:
                        s.say_prompt(event.text, kind="filler")
                elif isinstance(event, ToolUsed):
                    tools.append({"name": event.name, "ok": event.ok, "ms": round(event.ms, 1)})
                elif isinstance(event, (Escalate, EndCall)):
                    outcome = event
        finally:
            self.handle.synthesis_done = True
            call_in_thread(events.close, timeout=2)
        # Finish playing what was said before escalating or hanging up ("finish the goodbye").
        remaining = sum(c.duration_s for c in self.handle.chunks)
        s.wait_finished(self.handle, remaining + PLAYOUT_SLACK_S)
        return outcome

    def _speak(self, text: str) -> None:
        s = self.session
        if self.t_first_say is None:
            self.t_first_say = time.monotonic()
        self._says += 1
        pieces = s.deps.speaker.speak(s.uuid, f"{self.handle.utt_id}-{self._says}", text, s.channel.read_rate)
        for spoken, ms in iterate_in_thread(pieces, timeout=TTS_TIMEOUT_S):
            if self.cancelled:
                break
            if self.t_first_chunk is None:
                self.t_first_chunk = time.monotonic()
                self.engine_ms += ms
            if self.t_first_queued is None:
                # Stamped as the command goes out: FreeSWITCH's time to answer +OK is not ours.
                self.t_first_queued = time.monotonic()
            s.queue_playback(self.handle, spoken.text, str(spoken.path), spoken.duration_s)

    def _record(self, seq: int, started_at: str, tools: list[dict[str, Any]]) -> None:
        s, h = self.session, self.handle
        if not h.chunks:
            return
        heard = h.heard()
        overhead = _ms(self.t_in, self.t_first_queued)
        detail: dict[str, Any] = {"utt_id": h.utt_id, "tools": tools}
        if overhead is not None:
            detail["overhead_ms"] = round(max(0.0, overhead - self.engine_ms), 2)
        s.record.turn(
            seq, "agent", h.text, started_at=started_at, ended_at=now_utc(), source="policy",
            heard_text=heard, interrupted=h.interrupted,
            eos_wait_ms=self.data.get("eos_wait_ms"), asr_ms=self.data.get("asr_ms"),
            dialog_ms=_ms(self.t_in, self.t_first_say), tts_ms=_ms(self.t_first_say, self.t_first_chunk),
            first_audio_ms=_ms(self.t_in, h.first_audio_at), detail=detail,
        )
        if s.deps.stats is not None and overhead is not None:
            s.deps.stats.record_turn(detail["overhead_ms"], _ms(self.t_in, h.first_audio_at))
        if h.interrupted and s.conv is not None:
            s.conv.agent_heard(h.text, heard)
