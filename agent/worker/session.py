"""One forked call on the worker: audio → VAD → endpointing → ASR in a thread pool → JSON back to FreeSWITCH.

`CallStream` (agent.worker.stream) is the synchronous audio state (no I/O); `CallSession` drives it from one
WebSocket: at each pause it reads the turn signals (the live transcript so far, Smart Turn) and hands them
back, so the turn can end after ~240 ms of silence when the caller finished a sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from agent.config import VadConfig
from agent.engines.asr.base import AsrContext, AsrEngine, AsrSegment
from agent.engines.errors import EngineError
from agent.media import fork_protocol as proto
from agent.media import smart_turn
from agent.media.endpointing import (
    Event,
    SpeculativePause,
    SpeechContinuing,
    SpeechDropped,
    SpeechEnded,
    SpeechOnset,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnCheck,
)
from agent.media.turn_end import TurnSignals
from agent.worker.live import LiveDecoder, LiveFrame
from agent.worker.partials import PartialRelay
from agent.worker.stats import WorkerStats
from agent.worker.stream import CallStream

log = logging.getLogger(__name__)

# A speculative ASR pass: (perf_counter when it started, its executor future).
Speculative = tuple[float, "asyncio.Future"]
SEND_TIMEOUT_S = 5.0  # a peer that stops reading for this long is treated as gone
HEARTBEAT_S = 1.0
# Messages read from the socket but not yet processed: ~30 s of 20 ms frames. A session that falls further
# behind drops the oldest (counted) rather than growing without bound.
INTAKE_MAX = 1500
_CLOSED = object()
# At a turn check the stream waits this long at most for the transcript so far and the audio model; past it the
# turn falls back to silence alone. While it waits no frame is processed (onsets included), so a decoder that
# has fallen behind real time (an overloaded machine) must not hold the call's audio for long. Tests and
# benches that send audio faster than real time raise it.
SIGNAL_TIMEOUT_S = 0.3
INJECTED_ENGINE = "text-injected"


class CallSession:
    """Owns one connection after its metadata was accepted; `run` returns when the socket closes."""

    def __init__(self, ws: ServerConnection, meta: proto.ForkMetadata, *, vad_cfg: VadConfig,
                 engine: AsrEngine, executor: Executor, asr_timeout_s: float, allow_injection: bool,
                 hotwords: tuple[str, ...], stats: WorkerStats, max_pending_utterances: int = 4):
        self._ws = ws
        self._max_pending = max(1, max_pending_utterances)
        self.meta = meta
        self._engine = engine
        self._executor = executor
        self._asr_timeout_s = asr_timeout_s
        self._allow_injection = allow_injection
        self._stats = stats
        self._context = AsrContext(hotwords=hotwords, language=meta.lang, call_id=meta.call_id)
        self._live = LiveDecoder(engine, meta.rate, self._context, executor) if LiveDecoder.supported(engine) else None
        streaming = PartialRelay.supported(engine)
        self._stream = CallStream(meta.rate, vad_cfg, stats, live=self._live is not None, channels=meta.channels,
                                  hold=True, keep_caller=streaming)
        self._use_smart_turn = vad_cfg.smart_turn
        self._injection: str | None = None
        # Utterances go to ASR one at a time, so transcripts leave in utterance order.
        self._queue: asyncio.Queue[tuple[SpeechEnded, str | None, Speculative | None]] = asyncio.Queue()
        self._utterance = 0
        self._previewed = 0  # the utterance a turn_preview went out for (0: none pending)
        self._checked_text: str | None = None  # the transcript read at the last turn check
        self._received = 0  # audio bytes received, for heartbeats
        # (utterance, end of its last voiced frame, perf_counter at start, future) of the speculative pass.
        self._speculative: tuple[int, float, float, asyncio.Future] | None = None
        self._partials = (PartialRelay(engine, self._context, meta.rate, executor, self._send, lambda: self._utterance)
                          if streaming else None)

    async def run(self) -> None:
        asr_task = asyncio.create_task(self._asr_loop(), name=f"asr-{self.meta.call_id}")
        beat_task = asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.meta.call_id}")
        if self._partials is not None:
            await self._partials.start()
        # Intake and processing are apart: the socket is read (and audio counted for the heartbeat) as frames
        # arrive, even while processing waits for a decoder, so a busy worker is late but never looks dead.
        intake: asyncio.Queue[str | bytes | object] = asyncio.Queue()
        reader = asyncio.create_task(self._read(intake), name=f"read-{self.meta.call_id}")
        try:
            while (message := await intake.get()) is not _CLOSED:
                if isinstance(message, bytes):
                    # A zero-length binary frame is mod_audio_fork's graceful-shutdown: "flush your finals".
                    await self._handle(self._stream.feed(message) if message else self._stream.flush())
                else:
                    self._on_text(message)  # type: ignore[arg-type]
        except ConnectionClosed:
            pass  # a send after the hangup
        finally:
            reader.cancel()
            # The caller is gone: results still pending have nowhere to go.
            if self._partials is not None:
                self._partials.close()
            if self._live is not None:
                self._live.close()
            asr_task.cancel()
            beat_task.cancel()
            await asyncio.gather(asr_task, beat_task, return_exceptions=True)

    async def _read(self, intake: asyncio.Queue[str | bytes | object]) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    self._received += len(message)
                if intake.qsize() >= INTAKE_MAX:
                    intake.get_nowait()
                    self._stats.intake_dropped += 1
                intake.put_nowait(message)
        except ConnectionClosed:
            pass  # hangup: FreeSWITCH closes without a close frame
        finally:
            intake.put_nowait(_CLOSED)

    async def _handle(self, events: list[Event | LiveFrame]) -> None:
        if self._partials is not None:
            self._partials.feed(self._stream.take_caller_audio())
        pending = deque(events)
        while pending:
            event = pending.popleft()
            await self._on_event(event)
            if event is self._stream.held:
                # The stream waits here: read the turn signals, then let it go on (it may end the turn now).
                pending.extend(await self._resolve(event))

    async def _resolve(self, event: TurnCheck) -> list[Event | LiveFrame]:
        signals = await self._turn_signals(event)
        self._checked_text = signals.text
        if signals.sentence_end and signals.text and self._previewed != event.utterance:
            self._previewed = event.utterance
            self._stats.turn_previews += 1
            await self._send(proto.turn_preview(event.utterance, signals.text, event.at))
        events = self._stream.resolve(signals)
        if self._live is not None and any(isinstance(e, SpeechEnded) for e in events):
            # The turn ends at this pause: close the segment before the final is asked for, so no further
            # decoding is left. Only then: a closed segment's text leans toward "다" when the caller goes on.
            self._live.close_segment(event.utterance)
        if self._partials is not None:
            self._partials.feed(self._stream.take_caller_audio())
        return events

    async def _heartbeat(self) -> None:
        seq = 0
        per_s = self.meta.rate * 2 * self.meta.channels
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            seq += 1
            received_s = self._received / per_s
            await self._send(proto.heartbeat(seq, round(received_s * 1000), received_s))

    async def _on_event(self, event: Event | LiveFrame) -> None:
        if isinstance(event, LiveFrame):
            self._live.feed(event.frame)
        elif isinstance(event, SpeculativePause):
            if self._injection is None and self._live is None:  # a live decoder is already ahead
                self._discard_speculative()
                started = time.perf_counter()
                future = asyncio.get_running_loop().run_in_executor(
                    self._executor, self._engine.transcribe, np.frombuffer(event.pcm, dtype="<i2"),
                    self.meta.rate, self._context)
                self._speculative = (event.utterance, event.end, started, future)
        elif isinstance(event, SpeechOnset):
            await self._send(proto.speech_onset(event.utterance, event.at))
        elif isinstance(event, SpeechDropped):
            if event.onset_sent:
                await self._send(proto.speech_dropped(event.utterance, event.at, event.voiced_ms))
        elif isinstance(event, SpeechStarted):
            self._utterance = event.utterance
            if self._live is not None:
                self._live.begin(event.utterance, event.audio)
            await self._send(proto.speech_started(event.utterance, event.at))
        elif isinstance(event, SpeechContinuing):
            await self._send(proto.speech_continuing(event.utterance, event.at, event.voiced_ms))
        elif isinstance(event, SpeechPaused):
            await self._send(proto.speech_paused(event.utterance, event.at, event.voiced_ms))
        elif isinstance(event, TurnCheck):
            pass  # the stream holds on it; _handle reads the signals
        elif isinstance(event, SpeechResumed):
            if self._previewed == event.utterance:
                self._previewed = 0
                await self._send(proto.turn_resumed(event.utterance, event.at))
        else:
            await self._on_ended(event)

    async def _on_ended(self, event: SpeechEnded) -> None:
        self._stats.utterances += 1
        reason = f"turns_{event.eot.reason}"
        setattr(self._stats, reason, getattr(self._stats, reason) + 1)
        # The words the decision read go with it while a preview of this utterance stands (no voice since).
        text = self._checked_text if self._previewed == event.utterance else None
        self._previewed = 0
        source = proto.SOURCE_ASR if self._injection is None else proto.SOURCE_INJECTED
        await self._send(proto.speech_ended(event.utterance, event.start, event.end, eos_wait_ms=event.eos_wait_ms,
                                            eot=event.eot.as_dict(), text=text, source=source))
        injection, self._injection = self._injection, None
        if injection is not None:
            self._discard_speculative()
            if self._live is not None:
                self._live.abandon()
            speculative = None
        elif self._live is not None and (live := self._live.end(event.utterance)) is not None:
            # Decoded while spoken: what is left is the final pass, so asr_ms counts from now.
            self._stats.live_decoded += 1
            speculative = (time.perf_counter(), live)
        else:
            speculative = self._take_speculative(event)
        if self._queue.qsize() >= self._max_pending:
            # ASR is this far behind the caller: the oldest waiting utterance goes (counted), never the newest.
            dropped, _, _ = self._queue.get_nowait()
            self._stats.utterances_dropped += 1
            log.warning("call %s: ASR %d utterances behind; utterance %d dropped", self.meta.call_id,
                        self._max_pending, dropped.utterance)
        self._queue.put_nowait((event, injection, speculative))

    async def _turn_signals(self, event: TurnCheck) -> TurnSignals:
        """The transcript so far (live decoder, speculative pass or injected text) and, where it can change
        the decision, the Smart Turn score of the audio up to this pause (computed while the transcript is
        decoded, so the two waits overlap)."""
        policy, loop = self._stream.policy, asyncio.get_running_loop()
        scoring: asyncio.Future | None = None
        if self._use_smart_turn and policy.may_use_audio_model(event.silence_ms):
            scoring = loop.run_in_executor(self._executor, _score, event.pcm, self.meta.rate)
        text: str | None = self._injection
        if text is None:
            future: asyncio.Future | None = None
            if self._live is not None:
                future = self._live.partial(event.utterance)
            elif self._speculative is not None and self._speculative[:2] == (event.utterance, event.end):
                future = self._speculative[3]
            if future is not None:
                try:
                    result = await asyncio.wait_for(asyncio.shield(future), SIGNAL_TIMEOUT_S)
                    text = result if isinstance(result, str) else result.text
                except Exception as exc:  # a slow or failed pass only costs the fast path
                    self._stats.transcripts_late += 1
                    log.debug("call %s: no transcript at the pause: %r", self.meta.call_id, exc)
        signals = TurnSignals(text=text, closed=await self._closed_reading(event, text))
        if scoring is None or not policy.needs_audio_model(signals, event.silence_ms):
            if scoring is not None:
                scoring.add_done_callback(_ignore_result)  # not needed: let it finish unobserved
            return signals
        try:
            score = await asyncio.wait_for(scoring, SIGNAL_TIMEOUT_S)
        except smart_turn.SmartTurnUnavailable as exc:
            log.warning("call %s: Smart Turn off: %s", self.meta.call_id, exc)
            self._use_smart_turn = False
            return signals
        except Exception as exc:
            log.warning("call %s: Smart Turn failed: %r", self.meta.call_id, exc)
            return signals
        self._stats.smart_turn_calls += 1
        return TurnSignals(text=text, smart_turn=score, closed=signals.closed)

    async def _closed_reading(self, event: TurnCheck, text: str | None) -> str | None:
        """The live decoder's closed segment at this pause, where the policy reads one (turn_end.wants_closed)."""
        if self._live is None or not self._stream.policy.wants_closed(TurnSignals(text=text), event.silence_ms):
            return None
        future = self._live.closed_reading(event.utterance)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(future), SIGNAL_TIMEOUT_S)
        except Exception as exc:  # a slow or failed close only costs this reading
            self._stats.transcripts_late += 1
            log.debug("call %s: no closed segment at the pause: %r", self.meta.call_id, exc)
            return None

    def _on_text(self, text: str) -> None:
        try:
            inject = proto.parse_client_text(text)
        except proto.ProtocolError as exc:
            self._stats.errors += 1
            log.warning("call %s: bad text frame ignored: %s", self.meta.call_id, exc)
            return
        if inject is None:
            log.debug("call %s: text frame ignored (%d chars)", self.meta.call_id, len(text))
        elif not self._allow_injection:
            log.warning("call %s: text injection refused (worker.allow_text_injection is off)",
                        self.meta.call_id)
        else:
            self._stats.injected += 1
            self._injection = inject.text

    async def _asr_loop(self) -> None:
        while True:
            event, injection, speculative = await self._queue.get()
            if injection is not None:
                message = proto.transcript(
                    event.utterance, injection, source=proto.SOURCE_INJECTED, engine=INJECTED_ENGINE,
                    start=event.start, end=event.end, eos_wait_ms=event.eos_wait_ms, asr_ms=0,
                    segments=(AsrSegment(injection, event.start, event.end),) if injection else (),
                    eot=event.eot.as_dict(),
                )
            else:
                message = await self._recognise(event, speculative)
            await self._send(message)

    def _discard_speculative(self) -> None:
        if self._speculative is not None:
            self._stats.speculative_wasted += 1
            self._speculative = None  # its thread finishes on its own; the result is dropped

    def _take_speculative(self, event: SpeechEnded) -> Speculative | None:
        """The speculative pass for exactly this audio (same utterance, no voiced frame since the pause)."""
        spec, self._speculative = self._speculative, None
        if spec is None:
            return None
        if spec[0] == event.utterance and spec[1] == event.end:
            self._stats.speculative_used += 1
            return spec[2], spec[3]
        self._stats.speculative_wasted += 1
        return None

    async def _recognise(self, event: SpeechEnded, speculative: Speculative | None) -> str:
        loop = asyncio.get_running_loop()
        eos_at = time.perf_counter()
        self._stats.asr_calls += 1
        try:
            if speculative is not None:
                started, future = speculative
            else:
                started = eos_at
                future = loop.run_in_executor(self._executor, self._engine.transcribe,
                                              np.frombuffer(event.pcm, dtype="<i2"), self.meta.rate, self._context)
            # On timeout the thread runs on (a model call cannot be interrupted); its result is dropped.
            result = await asyncio.wait_for(future, self._asr_timeout_s)
        except TimeoutError:
            self._stats.asr_timeouts += 1
            log.warning("call %s: ASR timed out after %.1f s", self.meta.call_id, self._asr_timeout_s)
            return proto.asr_error(event.utterance, f"timeout after {self._asr_timeout_s:g} s", True)
        except EngineError as exc:
            self._stats.asr_errors += 1
            log.warning("call %s: ASR failed: %s", self.meta.call_id, exc)
            return proto.asr_error(event.utterance, str(exc), exc.retryable)
        except Exception as exc:  # an engine bug must cost one utterance, not the call
            self._stats.asr_errors += 1
            log.exception("call %s: ASR engine raised", self.meta.call_id)
            return proto.asr_error(event.utterance, f"engine error: {type(exc).__name__}", False)
        done = time.perf_counter()
        asr_ms = (done - started) * 1000
        self._stats.asr_ms_sum += asr_ms
        # Engine segment times are relative to the utterance audio, which starts at audio_start.
        segments = [AsrSegment(s.text, event.audio_start + s.start, event.audio_start + s.end, s.speaker)
                    for s in result.segments]
        return proto.transcript(
            event.utterance, result.text, source=proto.SOURCE_ASR, engine=result.engine,
            start=event.start, end=event.end, eos_wait_ms=event.eos_wait_ms, asr_ms=asr_ms,
            segments=segments, asr_wait_ms=(done - eos_at) * 1000, eot=event.eot.as_dict(),
        )

    async def _send(self, message: str) -> None:
        if self._ws.state is not State.OPEN:
            # Closing or closed (hangup): a send would only wait for the close to finish, then raise.
            log.debug("call %s: connection closing; message dropped", self.meta.call_id)
            return
        try:
            await asyncio.wait_for(self._ws.send(message), SEND_TIMEOUT_S)
        except TimeoutError:
            self._stats.errors += 1
            log.warning("call %s: send timed out; closing", self.meta.call_id)
            await self._ws.close(1011, "send timeout")


def _score(pcm: bytes, rate: int) -> float:
    return smart_turn.shared().score(np.frombuffer(pcm, dtype="<i2"), rate)


def _ignore_result(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # read, so a failure is not reported as "never retrieved"
