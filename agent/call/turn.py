"""One agent turn: transcript → dialog events → speakable chunks → TTS → queued playbacks, with its timings.

A turn may start *held* (a reply prepared from the worker's `turn_preview` while the end of turn is still being
confirmed): its audio is synthesized but not queued until `release()`; `discard()` throws it away and it
leaves no trace in the history. A cancelled turn stops queueing at once; its dialog step may still be running
in a pool thread, so its history writes are fenced by the turn scope and the history is settled to exactly
what the caller heard.

Latency parts stored per agent turn (docs/benchmarks.md defines them): dialog_ms (transcript in → first
speakable text), tts_ms (→ first chunk written), first_audio_ms (→ PLAYBACK_START), and overhead_ms: the
controller's own time, i.e. transcript in → first playback command sent, minus time spent inside the engines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import gevent
from gevent.event import Event as GEvent

from agent.call.actions.say import Voice
from agent.call.record import CallRecord
from agent.call.threads import close_in_thread, iterate_in_thread
from agent.dialog.policy import Conversation, EndCall, Escalate, Filler, Say, ToolUsed
from agent.dialog.state import turn_scope
from agent.store.calls import now_utc

log = logging.getLogger(__name__)

TTS_TIMEOUT_S = 10.0
PLAYOUT_SLACK_S = 5.0
CLOSE_TIMEOUT_S = 2.0
HOLD_MAX_S = 3.0  # a held reply whose end of turn is neither confirmed nor withdrawn by then is dropped


class SpeakerLike(Protocol):
    def speak(self, call_id: str, utt_id: str, text: str, rate: int) -> Iterator[Any]: ...


class StatsLike(Protocol):
    def record_turn(self, overhead_ms: float, first_audio_ms: float | None) -> None: ...


@dataclass
class TurnContext:
    """What a turn is handed by its call."""

    uuid: str
    conv: Conversation
    voice: Voice
    speaker: SpeakerLike
    record: CallRecord
    rate: int
    escalate: Callable[..., None]  # (reason, summary="", priority=5, *, failure=False)
    hang_up: Callable[[], None]
    turn_timeout_s: float = 8.0
    filler_after_s: float = 1.5  # a dialog step that has not answered by then gets a filler
    slow_fillers: tuple[str, ...] = ("잠시만요, 확인하고 있습니다.",)
    stats: StatsLike | None = None
    clock: Callable[[], float] = time.monotonic


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 2)


@dataclass
class _Held:
    text: str
    path: str
    duration_s: float
    group: int


@dataclass
class Turn:
    ctx: TurnContext
    data: dict[str, Any]
    t_in: float
    held: bool = False
    turn_id: str = ""
    cancelled: bool = False
    discarded: bool = False
    done: bool = False
    greenlet: gevent.Greenlet | None = None
    t_first_say: float | None = None
    t_first_chunk: float | None = None
    t_first_queued: float | None = None
    engine_ms: float = 0.0  # time inside the policy and TTS before the first playback is queued
    _says: int = 0
    _held_chunks: list[_Held] = field(default_factory=list)
    _recorded_caller: bool = False
    _t_preview: float | None = None
    _pending_filler: str | None = None
    _tts_texts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.handle = self.ctx.voice.new_handle("reply")
        self._decided = GEvent()
        if not self.held:
            self._decided.set()
        else:
            self._t_preview = self.t_in
        self.turn_id = self.turn_id or f"{self.ctx.uuid}:{self.handle.utt_id}"

    @property
    def utterance(self) -> int | None:
        value = self.data.get("utterance")
        return value if isinstance(value, int) else None

    @property
    def text(self) -> str:
        return str(self.data.get("text", "")).strip()

    @property
    def has_audio(self) -> bool:
        return bool(self.handle.chunks)

    def scope(self) -> AbstractContextManager[None]:
        return turn_scope(self.turn_id)

    # control from the call (same hub, no locking needed) -------------------------------------------------

    def cancel(self) -> None:
        """Stops queueing at once; whatever the dialog step still running writes is fenced off."""
        self.cancelled = True

    def discard(self) -> None:
        """A held reply the caller went on talking over: it never happened."""
        self.cancelled = True
        self.discarded = True
        self._held_chunks.clear()
        self._decided.set()
        settle = getattr(self.ctx.conv, "discard_turn", None)
        if settle is not None:
            settle(self.turn_id)

    def release(self, final: dict[str, Any]) -> None:
        """The end of turn is confirmed: the held audio goes out, the final's timings become the turn's."""
        self.data = {**final, "text": self.text}
        self.t_in = self.ctx.clock()
        if not self.held:
            return
        self.held = False
        self._decided.set()
        self._record_caller()
        if self._pending_filler is not None and not self._held_chunks:
            self._filler(self._pending_filler)
        for chunk in self._held_chunks:
            self._queue(chunk.text, chunk.path, chunk.duration_s, chunk.group)
        self._held_chunks.clear()

    # the turn ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.greenlet = gevent.getcurrent()
        if not self.held:
            self._record_caller()
        agent_seq: int | None = None
        started_at = now_utc()
        outcome: Escalate | EndCall | None = None
        tools: list[dict[str, Any]] = []
        filler = gevent.spawn(self._slow_fillers)
        try:
            outcome = self._converse(tools, filler)
        except gevent.Timeout:
            log.warning("call %s: dialog or TTS timed out", self.ctx.uuid)
            if not self.cancelled:
                self.ctx.escalate("agent_timeout", failure=True)
        except gevent.GreenletExit:
            raise
        except Exception:  # noqa: BLE001 - a failed turn must end in a human, never in dead air
            log.exception("call %s: turn failed", self.ctx.uuid)
            if not self.cancelled:
                self.ctx.escalate("agent_error", failure=True)
        finally:
            filler.kill(block=False)
            self.handle.synthesis_done = True
            self.ctx.voice.check_finished(self.handle)
            if not self.discarded:
                agent_seq = self.ctx.record.next_turn_seq() if self.handle.chunks else None
                self._record(agent_seq, started_at, tools)
            self.done = True
        if self.cancelled:
            return
        if isinstance(outcome, Escalate):
            self.ctx.escalate(outcome.reason, outcome.summary, outcome.priority)
        elif isinstance(outcome, EndCall):
            self.ctx.hang_up()

    def _record_caller(self) -> None:
        if self._recorded_caller:
            return
        self._recorded_caller = True
        data, rec = self.data, self.ctx.record
        detail = {k: data.get(k) for k in ("utterance", "start", "end", "asr_wait_ms", "eot") if k in data}
        if self._t_preview is not None:
            detail["preemptive"] = True  # prepared from turn_preview, played once the end was confirmed
        rec.turn(rec.next_turn_seq(), "caller", self.text, started_at=now_utc(),
                 source=data.get("source", "asr"), engine=data.get("engine"), eos_wait_ms=data.get("eos_wait_ms"),
                 asr_ms=data.get("asr_ms"), detail=detail)

    def _converse(self, tools: list[dict[str, Any]], filler: gevent.Greenlet) -> Escalate | EndCall | None:
        ctx = self.ctx
        outcome: Escalate | EndCall | None = None
        with self.scope():
            events = ctx.conv.respond(self.text, self.data.get("source", "asr"))
        try:
            for event, ms in iterate_in_thread(events, timeout=ctx.turn_timeout_s, scope=self.scope):
                if self.t_first_queued is None:
                    self.engine_ms += ms
                if self.cancelled:
                    break
                if isinstance(event, Say):
                    self._speak(event.text)
                elif isinstance(event, Filler):
                    filler.kill(block=False)
                    self._filler(event.text)
                elif isinstance(event, ToolUsed):
                    tools.append({"name": event.name, "ok": event.ok, "ms": round(event.ms, 1)})
                elif isinstance(event, (Escalate, EndCall)):
                    outcome = event
        finally:
            self.handle.synthesis_done = True
            if not close_in_thread(events, timeout=CLOSE_TIMEOUT_S, scope=self.scope):
                log.info("call %s: a dialog step is still running; its writes are fenced off", ctx.uuid)
        if self.held and not self._decided.wait(HOLD_MAX_S):
            log.info("call %s: held reply never confirmed; dropped", ctx.uuid)
            self.discard()
        if self.cancelled:
            return outcome
        # Finish playing what was said before escalating or hanging up ("finish the goodbye").
        ctx.voice.wait_finished(self.handle, ctx.voice.remaining_s(self.handle) + PLAYOUT_SLACK_S)
        return outcome

    def _filler(self, text: str) -> None:
        """Covers a slow tool only while the line is silent; never queued behind real speech. A held turn
        keeps it until its end of turn is confirmed."""
        if self.held:
            self._pending_filler = text
        elif self.t_first_say is None and not self.ctx.voice.playout.audio_queued:
            self.ctx.voice.say_prompt(text, kind="filler")

    def _slow_fillers(self) -> None:
        """Nothing to say yet (the dialog, a tool or the TTS is slow): a short phrase each time the line has
        been silent for `filler_after_s`, at most twice, so the caller never waits in silence; the turn's
        timeout decides after that."""
        ctx = self.ctx
        for text in ctx.slow_fillers:
            while True:
                gevent.sleep(ctx.filler_after_s)
                if self.cancelled or self.t_first_queued is not None:
                    return
                if not self.held and not ctx.voice.playout.audio_queued:
                    break
            ctx.record.event("slow_step_filler", waited_ms=round(ctx.filler_after_s * 1000),
                             step="dialog" if self.t_first_say is None else "tts")
            handle = ctx.voice.say_prompt(text, kind="filler")
            ctx.voice.wait_finished(handle, ctx.voice.remaining_s(handle) + 1.0)

    def _speak(self, text: str) -> None:
        ctx = self.ctx
        if self.t_first_say is None:
            self.t_first_say = ctx.clock()
        self._says += 1
        group = self._says * 1000
        pieces = ctx.speaker.speak(ctx.uuid, f"{self.handle.utt_id}-{self._says}", text, ctx.rate)
        for spoken, ms in iterate_in_thread(pieces, timeout=TTS_TIMEOUT_S):
            if self.cancelled:
                close_in_thread(pieces, timeout=CLOSE_TIMEOUT_S)
                break
            if self.t_first_chunk is None:
                self.t_first_chunk = ctx.clock()
                self.engine_ms += ms
            if getattr(spoken, "tts_text", ""):
                self._tts_texts.append(spoken.tts_text)
            # Parts of one piece (a streaming engine) carry the text on the last part only: one group.
            if self.held:
                self._held_chunks.append(_Held(spoken.text, str(spoken.path), spoken.duration_s, group))
            else:
                self._queue(spoken.text, str(spoken.path), spoken.duration_s, group)
            if spoken.text:
                group += 1

    def _queue(self, text: str, path: str, duration_s: float, group: int) -> None:
        if self.t_first_queued is None:
            # Stamped as the command goes out: FreeSWITCH's time to answer +OK is not ours.
            self.t_first_queued = self.ctx.clock()
        self.ctx.voice.queue(self.handle, text, path, duration_s, group=group)

    def _record(self, seq: int | None, started_at: str, tools: list[dict[str, Any]]) -> None:
        ctx, h = self.ctx, self.handle
        heard = h.heard()
        settle = getattr(ctx.conv, "settle_turn", None)
        if settle is not None:
            settle(self.turn_id, heard)
        elif h.interrupted:
            ctx.conv.agent_heard(h.text, heard)
        if seq is None:
            return
        overhead = _ms(self.t_in, self.t_first_queued)
        detail: dict[str, Any] = {"utt_id": h.utt_id, "tools": tools}
        if overhead is not None:
            detail["overhead_ms"] = round(max(0.0, overhead - self.engine_ms), 2)
        if "eot" in self.data:
            detail["eot"] = self.data["eot"]
        if self._tts_texts:
            detail["tts_text"] = " ".join(self._tts_texts)  # the spoken form the TTS was given
        take_usage = getattr(ctx.conv, "take_usage", None)
        usage = take_usage() if take_usage is not None else None
        if usage:
            detail["llm_usage"] = usage  # the turn's LLM tokens, for its cost
        t_dialog = self.t_in
        if self._t_preview is not None:
            # Prepared ahead: dialog and TTS ran before the end of turn; the lead is what preemption saved.
            detail["preemptive_lead_ms"] = _ms(self._t_preview, self.t_in)
            t_dialog = self._t_preview
        ctx.record.turn(
            seq, "agent", h.text, started_at=started_at, ended_at=now_utc(), source="policy",
            heard_text=heard, interrupted=h.interrupted,
            eos_wait_ms=self.data.get("eos_wait_ms"), asr_ms=self.data.get("asr_ms"),
            dialog_ms=_ms(t_dialog, self.t_first_say), tts_ms=_ms(self.t_first_say, self.t_first_chunk),
            first_audio_ms=_ms(self.t_in, h.first_audio_at), detail=detail,
        )
        if ctx.stats is not None and overhead is not None:
            ctx.stats.record_turn(detail["overhead_ms"], _ms(self.t_in, h.first_audio_at))

