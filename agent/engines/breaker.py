"""Run-time failover for engines: a circuit breaker per engine, and wrappers that send a request to the CPU
engine when the model server fails, so a server that dies mid-call costs one sentence, not the call.

Closed: every request goes to the primary. `failures_to_open` failures in a row open the breaker: requests
go straight to the fallback for `reset_after_s`; then one request tries the primary again (half-open) and
its outcome closes or re-opens the breaker. Time comes from `clock`, so the core is tested without sleeping.
With `reset_after_s=None` time never half-opens it: a health probe off the request path calls `half_open()`
(the LLM's breaker, agent/dialog/llm_guard.py, where a trial turn would cost the caller a whole timeout).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from agent.engines.asr.base import AsrContext, AsrEngine, AsrResult
from agent.engines.errors import EngineError
from agent.engines.tts.base import AudioChunk, TtsEngine

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Every breaker made by the registries, by name ("tts vibevoice-realtime"): state and open count for metrics.
BREAKERS: dict[str, CircuitBreaker] = {}


class CircuitBreaker:
    """Thread-safe; `allow()` before a primary request, then `success()` or `failure()`."""

    def __init__(self, name: str, *, failures_to_open: int = 1, reset_after_s: float | None = 15.0,
                 clock: Callable[[], float] = time.monotonic):
        if failures_to_open < 1 or (reset_after_s is not None and reset_after_s <= 0):
            raise ValueError("failures_to_open must be >= 1 and reset_after_s > 0")
        self.name = name
        self.failures_to_open = failures_to_open
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened = 0  # times the breaker opened (exported as a metric)
        self._opened_at = 0.0
        self._trial = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self.state == CLOSED:
                return True
            if (self.state == OPEN and self.reset_after_s is not None
                    and self.clock() - self._opened_at >= self.reset_after_s):
                self.state = HALF_OPEN
                self._trial = False
            if self.state == HALF_OPEN and not self._trial:
                self._trial = True  # one request tries the primary; the others keep using the fallback
                return True
            return False

    def success(self) -> None:
        with self._lock:
            if self.state != CLOSED:
                log.warning("ENGINE RECOVERED: %s answers again; back from the fallback", self.name)
            self.state, self.failures, self._trial = CLOSED, 0, False

    def half_open(self) -> None:
        """A health probe saw the primary answer: the next request tries it (an open breaker only)."""
        with self._lock:
            if self.state == OPEN:
                log.warning("ENGINE PROBE OK: %s; the next request tries it again", self.name)
                self.state, self._trial = HALF_OPEN, False

    def abandon(self) -> None:
        """A request that ended with neither outcome (the caller stopped listening): let another try."""
        with self._lock:
            self._trial = False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or self.failures >= self.failures_to_open:
                if self.state != OPEN:
                    self.opened += 1
                    log.warning("ENGINE FAILED: %s; using the fallback %s", self.name,
                                "until a probe answers" if self.reset_after_s is None
                                else f"for {self.reset_after_s:.0f} s")
                self.state, self._opened_at, self._trial = OPEN, self.clock(), False


class Lazy:
    """The fallback engine, built on first need (a CPU engine a healthy call never uses costs nothing)."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._engine: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


class FailoverTts:
    """A TtsEngine: the primary while it answers, else the fallback, sentence by sentence.

    A sentence the primary fails before its first audio is spoken by the fallback at once; one that fails
    part-way ends there (repeating its start would be worse) and the next sentence goes to the fallback.
    """

    def __init__(self, primary: TtsEngine, fallback: Callable[[], TtsEngine], breaker: CircuitBreaker):
        self.primary = primary
        self.name = primary.name
        self.cache_tag = getattr(primary, "cache_tag", primary.name)
        self.language_voices = dict(getattr(primary, "language_voices", {}))
        self.breaker = breaker
        self._fallback = Lazy(fallback)
        self.served_by_fallback = 0
        # Pooled GPU engines take `call_id`; the Speaker passes it when this signature has it.
        self._takes_call_id = "call_id" in inspect.signature(primary.synthesize).parameters

    def synthesize(self, text: str, voice: str, call_id: str | None = None) -> Iterator[AudioChunk]:
        if self.breaker.allow():
            produced, settled = False, False
            stream = iter(self._primary_stream(text, voice, call_id))
            try:
                for chunk in stream:
                    produced = True
                    yield chunk
                self.breaker.success()
                settled = True
                return
            except EngineError as exc:
                self.breaker.failure()
                settled = True
                log.warning("tts %s failed (%s)", self.name, exc)
                if produced:
                    return
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()  # a barge-in stops a streaming primary too
                if not settled:
                    self.breaker.abandon()
        self.served_by_fallback += 1
        yield from self._fallback.get().synthesize(text, voice)

    def _primary_stream(self, text: str, voice: str, call_id: str | None) -> Iterator[AudioChunk]:
        if call_id is not None and self._takes_call_id:
            return self.primary.synthesize(text, voice, call_id=call_id)  # type: ignore[call-arg]
        return self.primary.synthesize(text, voice)

    def close(self) -> None:
        self.primary.close()
        self._fallback.close()


class FailoverAsr:
    """An AsrEngine: the primary while it answers, else the fallback for that utterance and the next ones.
    Other attributes (live decoding, streams) are the primary's."""

    def __init__(self, primary: AsrEngine, fallback: Callable[[], AsrEngine], breaker: CircuitBreaker):
        self.primary = primary
        self.name = primary.name
        self.breaker = breaker
        self._fallback = Lazy(fallback)
        self.served_by_fallback = 0

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        if self.breaker.allow():
            try:
                result = self.primary.transcribe(pcm, sample_rate, context)
            except EngineError as exc:
                self.breaker.failure()
                log.warning("asr %s failed (%s); this utterance goes to the fallback", self.name, exc)
            else:
                self.breaker.success()
                return result
        self.served_by_fallback += 1
        return self._fallback.get().transcribe(pcm, sample_rate, context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.primary, name)

    def close(self) -> None:
        self.primary.close()
        self._fallback.close()
