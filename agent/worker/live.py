"""Decoding an utterance while it is spoken, for engines with `open_utterance` (Vosk/Kaldi).

Audio reaches the decoder in ~200 ms batches from the shared thread pool, one job at a time per call (a
decoder is not thread-safe and must see audio in order). At the end of speech only the last batch and the
decoder's final pass remain, instead of the whole utterance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from agent.engines.asr.base import AsrContext, AsrResult
from agent.engines.errors import EngineError

log = logging.getLogger(__name__)

BATCH_S = 0.2
# Silence fed to the decoder before reading a partial at a turn check. Kaldi decodes in chunks and holds the
# last few hundred ms back, so after 240 ms of real silence its partial often lacks the final syllable
# ("거라" for "걸어갔다"; at 8 kHz 1 sentence ending in 11 was visible, 7 with this pad). Word times after a pad
# are moved back by it, so the final segments still match the stream.
CHECK_PAD_S = 0.25


@dataclass(frozen=True)
class LiveFrame:
    """One 20 ms frame of an utterance in progress (emitted only when live decoding is on)."""

    frame: bytes


class LiveDecoder:
    def __init__(self, engine: Any, rate: int, context: AsrContext, executor: Executor):
        self._engine = engine
        self._rate = rate
        self._context = context
        self._executor = executor
        self._decoder: Any = None
        self._utterance = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._batch_bytes = int(BATCH_S * rate) * 2
        self._tail: asyncio.Future | None = None
        self._fed_s = 0.0  # audio handed to this utterance's decoder, pads included
        self._pads: list[tuple[float, float]] = []  # (decoder seconds where a pad went in, its length)
        # The engine's decoders can close a segment at a pause (VoskUtterance.checkpoint).
        self._checkpoints = bool(getattr(engine, "live_checkpoints", False))

    @staticmethod
    def supported(engine: Any) -> bool:
        return callable(getattr(engine, "open_utterance", None))

    def begin(self, utterance: int, audio: bytes) -> None:
        """A new utterance: a fresh decoder, fed the audio captured up to its confirmation."""
        self._utterance = utterance
        self._pending, self._pending_bytes = [], 0
        self._fed_s, self._pads = 0.0, []
        self._then(self._open)
        self.feed(audio)

    def feed(self, data: bytes) -> None:
        if not self._utterance:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._fed_s += len(data) / 2 / self._rate
        if self._pending_bytes >= self._batch_bytes:
            self._flush()

    def end(self, utterance: int) -> asyncio.Future[AsrResult] | None:
        """The decoder's result for `utterance`, or None if it was not being decoded live."""
        if utterance != self._utterance or self._tail is None:
            return None
        self._flush()
        self._utterance = 0
        return self._then(self._result)

    def partial(self, utterance: int, pad_s: float = CHECK_PAD_S) -> asyncio.Future[str] | None:
        """The words decoded so far for `utterance` (after all audio fed until now, then `pad_s` of silence),
        or None if it is not being decoded live. For the end-of-turn check at a pause."""
        if utterance != self._utterance or self._tail is None:
            return None
        self._flush()
        if pad_s > 0:
            self._pads.append((self._fed_s, pad_s))
            self._fed_s += pad_s
            self._then(self._accept, np.zeros(int(pad_s * self._rate), dtype=np.int16))
        return self._then(self._partial)

    def close_segment(self, utterance: int) -> None:
        """The turn ends at this pause: where the engine can, close the segment now (queued after the partial
        read, before the final), so the final result needs no further decoding."""
        self.closed_reading(utterance)

    def closed_reading(self, utterance: int) -> asyncio.Future[str] | None:
        """Closes the segment now (after the jobs queued) and gives every word so far, or None where the engine
        cannot close one or `utterance` is not being decoded. Decoding goes on in a new segment. Closing applies
        the language model's end-of-sentence weight, which on the phone band writes a "다" after a noun at a
        mid-sentence pause: turn_end.wants_closed says when a turn check may read it."""
        if not self._checkpoints or utterance != self._utterance or self._tail is None:
            return None
        self._flush()
        return self._then(self._checkpoint)

    def abandon(self) -> None:
        self._utterance = 0
        self._pending, self._pending_bytes = [], 0
        if self._tail is not None:
            self._then(self._close_decoder)  # after the jobs queued: a decoder is used by one thread at a time

    def _close_decoder(self) -> None:
        decoder, self._decoder = self._decoder, None
        close = getattr(decoder, "close", None)
        if callable(close):
            close()  # a pooled recogniser goes back warm

    def close(self) -> None:
        """The call is over: drops the jobs not yet run. Under load the chain can be seconds of audio behind;
        left alone it would go on decoding (and holding the decoder and the audio) for a caller who hung up."""
        self._utterance = 0
        self._pending, self._pending_bytes = [], 0
        if self._tail is not None:
            self._tail.cancel()  # each job awaits the previous through gather: the whole chain is cancelled
            self._tail = None

    def _flush(self) -> None:
        if self._pending:
            pcm = np.frombuffer(b"".join(self._pending), dtype="<i2")
            self._pending, self._pending_bytes = [], 0
            self._then(self._accept, pcm)

    def _then(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Runs fn in the pool after the previous job of this call, whatever that job's outcome."""
        previous = self._tail

        async def job() -> Any:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

        self._tail = asyncio.ensure_future(job())
        return self._tail

    def _open(self) -> None:
        self._decoder = self._engine.open_utterance(self._rate, self._context)

    def _accept(self, pcm: np.ndarray) -> None:
        if self._decoder is not None:  # None only if opening failed; result() reports that
            self._decoder.accept(pcm)

    def _checkpoint(self) -> str:
        return self._decoder.checkpoint() if self._decoder is not None else ""

    def _partial(self) -> str:
        text = getattr(self._decoder, "partial", None)  # an engine's decoder without one gives no partial
        return text() if callable(text) else ""

    def _result(self) -> AsrResult:
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            raise EngineError(getattr(self._engine, "name", "asr"), "live decoder could not start", retryable=True)
        result = decoder.result()
        if not self._pads:
            return result
        shift = partial_shift(tuple(self._pads))
        return replace(result, segments=tuple(replace(s, start=shift(s.start), end=shift(s.end))
                                              for s in result.segments))


def partial_shift(pads: tuple[tuple[float, float], ...]) -> Callable[[float], float]:
    """Maps decoder time to utterance time by taking the inserted pads out (a time inside a pad → its start)."""

    def shift(t: float) -> float:
        out = t
        for at, length in pads:
            if t > at:
                out -= min(length, t - at)
        return out

    return shift
