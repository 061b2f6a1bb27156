"""Live partial transcripts for engines with a streaming session (vibevoice-streaming).

The call's audio is batched (~200 ms) into the engine's sticky per-call stream from the thread pool, and a
reader thread relays each partial to FreeSWITCH as a transcription with `"final": false`. Finals still come
from the VAD-cut utterances, so a slow or lost stream never delays a turn: a stream failure only stops partials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

import numpy as np

from agent.engines.asr.base import AsrContext
from agent.engines.errors import EngineError
from agent.media import fork_protocol as proto

log = logging.getLogger(__name__)

BATCH_S = 0.2  # one engine send per 200 ms instead of one per 20 ms frame


class PartialRelay:
    def __init__(self, engine, context: AsrContext, rate: int, executor: Executor,
                 send: Callable[[str], Awaitable[None]], utterance: Callable[[], int]):
        self._engine = engine
        self._context = context
        self._rate = rate
        self._executor = executor
        self._send = send
        self._utterance = utterance
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._stream = None
        self._failed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch_bytes = int(BATCH_S * rate) * 2

    @staticmethod
    def supported(engine) -> bool:
        return callable(getattr(engine, "open_stream", None))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._stream = await self._loop.run_in_executor(self._executor, self._engine.open_stream, self._context)
        except EngineError as exc:
            self._fail(exc)
            return
        self._loop.run_in_executor(self._executor, self._read)

    def feed(self, data: bytes) -> None:
        if self._stream is None or self._failed or not data:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._batch_bytes:
            blob = b"".join(self._pending)
            cut = len(blob) - len(blob) % 2
            self._pending, self._pending_bytes = ([blob[cut:]], len(blob) - cut) if cut < len(blob) else ([], 0)
            pcm = np.frombuffer(blob[:cut], dtype="<i2")
            self._loop.run_in_executor(self._executor, self._feed, pcm)

    def _feed(self, pcm: np.ndarray) -> None:
        try:
            self._stream.feed(pcm, self._rate)
        except (EngineError, ValueError) as exc:
            self._fail(exc)

    def _read(self) -> None:
        for partial in self._stream.partials():
            message = proto.transcript(self._utterance(), partial.transcript, source=proto.SOURCE_ASR,
                                       engine=self._engine.name, start=0.0, end=0.0, eos_wait_ms=0,
                                       asr_ms=0, final=False)
            asyncio.run_coroutine_threadsafe(self._send(message), self._loop)

    def _fail(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            log.warning("call %s: live partials stopped: %s", self._context.call_id, exc)

    def close(self) -> None:
        end_call = getattr(self._engine, "end_call", None)
        if self._stream is not None and end_call is not None:
            self._executor.submit(end_call, self._context.call_id)
