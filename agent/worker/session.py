"""One forked call on the worker: audio → VAD → endpointing → ASR in a thread pool → JSON back to FreeSWITCH.

`CallStream` is the synchronous audio state (no I/O); `CallSession` drives it from one WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import asdict, dataclass

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from agent.config import VadConfig
from agent.engines.asr.base import AsrContext, AsrEngine, AsrSegment
from agent.engines.errors import EngineError
from agent.media import endpointing
from agent.media import fork_protocol as proto
from agent.media.endpointing import Endpointer, Event, SpeechEnded, SpeechOnset, SpeechPaused, SpeechStarted
from agent.media.vad import FRAME_MS, Vad, WebRtcVad, frame_bytes
from agent.worker.live import LiveDecoder, LiveFrame
from agent.worker.partials import PartialRelay

log = logging.getLogger(__name__)

# A speculative ASR pass: (perf_counter when it started, its executor future).
Speculative = tuple[float, "asyncio.Future"]
SEND_TIMEOUT_S = 5.0  # a peer that stops reading for this long is treated as gone
INJECTED_ENGINE = "text-injected"


@dataclass
class WorkerStats:
    """Counters for the whole worker; only the event loop thread writes them."""

    connections: int = 0
    active: int = 0
    rejected: int = 0
    messages: int = 0
    frames: int = 0
    bytes: int = 0
    odd_frames: int = 0  # binary messages with an odd byte count (a sample split across messages)
    utterances: int = 0
    asr_calls: int = 0
    asr_ms_sum: float = 0.0
    asr_errors: int = 0
    asr_timeouts: int = 0
    injected: int = 0
    live_decoded: int = 0  # finals decoded while the caller spoke (engines with open_utterance)
    speculative_used: int = 0  # finals whose ASR had already run during the silence
    speculative_wasted: int = 0  # speculative passes dropped because the caller spoke again
    errors: int = 0  # protocol violations and failed sends

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class CallStream:
    """Reassembles the L16 stream into 20 ms frames, runs the VAD and the endpointer; time = samples / rate."""

    def __init__(self, rate: int, vad_cfg: VadConfig, stats: WorkerStats, *, vad: Vad | None = None,
                 live: bool = False):
        self.rate = rate
        self._live = live  # also emit each frame of an utterance in progress, for live decoding
        self._stats = stats
        self._vad = vad or WebRtcVad(vad_cfg.aggressiveness)
        self._assembler = proto.FrameAssembler(frame_bytes(rate))
        self._endpointer = Endpointer(vad_cfg)
        self._frame_samples = rate * FRAME_MS // 1000
        self._samples = 0

    @property
    def stream_s(self) -> float:
        """Seconds of audio turned into frames so far."""
        return self._samples / self.rate

    def feed(self, data: bytes) -> list[Event]:
        stats = self._stats
        stats.messages += 1
        stats.bytes += len(data)
        if len(data) % 2:
            stats.odd_frames += 1
        events: list[Event] = []
        for frame in self._assembler.feed(data):
            t = self._samples / self.rate
            self._samples += self._frame_samples
            stats.frames += 1
            found = self._endpointer.push(frame, self._vad.is_speech(frame, self.rate), t)
            if found:
                events.extend(found)
            elif self._live and self._endpointer.state is endpointing.State.SPEAKING:
                events.append(LiveFrame(frame))
        return events

    def flush(self) -> list[Event]:
        """Finishes an utterance in progress (a partial frame still pending is < 20 ms and is dropped)."""
        return self._endpointer.flush(self.stream_s)


class CallSession:
    """Owns one connection after its metadata was accepted; `run` returns when the socket closes."""

    def __init__(self, ws: ServerConnection, meta: proto.ForkMetadata, *, vad_cfg: VadConfig,
                 engine: AsrEngine, executor: Executor, asr_timeout_s: float, allow_injection: bool,
                 hotwords: tuple[str, ...], stats: WorkerStats):
        self._ws = ws
        self.meta = meta
        self._engine = engine
        self._executor = executor
        self._asr_timeout_s = asr_timeout_s
        self._allow_injection = allow_injection
        self._stats = stats
        self._context = AsrContext(hotwords=hotwords, language=meta.lang, call_id=meta.call_id)
        self._live = LiveDecoder(engine, meta.rate, self._context, executor) if LiveDecoder.supported(engine) else None
        self._stream = CallStream(meta.rate, vad_cfg, stats, live=self._live is not None)
        self._injection: str | None = None
        # Utterances go to ASR one at a time, so transcripts leave in utterance order.
        self._queue: asyncio.Queue[tuple[SpeechEnded, str | None, Speculative | None]] = asyncio.Queue()
        self._utterance = 0
        # (utterance, end of its last voiced frame, perf_counter at start, future) of the speculative pass.
        self._speculative: tuple[int, float, float, asyncio.Future] | None = None
        self._partials = (PartialRelay(engine, self._context, meta.rate, executor, self._send, lambda: self._utterance)
                          if PartialRelay.supported(engine) else None)

    async def run(self) -> None:
        asr_task = asyncio.create_task(self._asr_loop(), name=f"asr-{self.meta.call_id}")
        if self._partials is not None:
            await self._partials.start()
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    if self._partials is not None:
                        self._partials.feed(message)
                    # A zero-length binary frame is mod_audio_fork's graceful-shutdown: "flush your finals".
                    events = self._stream.feed(message) if message else self._stream.flush()
                    for event in events:
                        await self._on_event(event)
                else:
                    self._on_text(message)
        except ConnectionClosed:
            pass  # hangup: FreeSWITCH closes without a close frame
        finally:
            # The caller is gone: results still pending have nowhere to go.
            if self._partials is not None:
                self._partials.close()
            asr_task.cancel()
            await asyncio.gather(asr_task, return_exceptions=True)

    async def _on_event(self, event: Event | LiveFrame) -> None:
        if isinstance(event, LiveFrame):
            self._live.feed(event.frame)
            return
        if isinstance(event, SpeechPaused):
            if self._injection is None and self._live is None:  # a live decoder is already ahead
                self._discard_speculative()
                started = time.perf_counter()
                future = asyncio.get_running_loop().run_in_executor(
                    self._executor, self._engine.transcribe, np.frombuffer(event.pcm, dtype="<i2"),
                    self.meta.rate, self._context)
                self._speculative = (event.utterance, event.end, started, future)
            return
        if isinstance(event, SpeechOnset):
            await self._send(proto.speech_onset(event.utterance, event.at))
            return
        if isinstance(event, SpeechStarted):
            self._utterance = event.utterance
            if self._live is not None:
                self._live.begin(event.utterance, event.audio)
            await self._send(proto.speech_started(event.utterance, event.at))
            return
        self._stats.utterances += 1
        await self._send(proto.speech_ended(event.utterance, event.start, event.end))
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
        self._queue.put_nowait((event, injection, speculative))

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
            segments=segments, asr_wait_ms=(done - eos_at) * 1000,
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
