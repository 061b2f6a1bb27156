"""A deterministic ASR engine for tests and demos: returns configured text, optionally late or failing."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.config_reader import Section
from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.engines.errors import EngineError, EngineUnavailable

ENGINE_NAME = "fake"
CALLS_KEPT = 1000


@dataclass(frozen=True)
class FakeCall:
    samples: int
    sample_rate: int
    context: AsrContext


class FakeAsr:
    """Answers every utterance with `text` after `delay_s`; with `fail` set, raises EngineError instead."""

    name = ENGINE_NAME

    def __init__(self, *, text: str = "", delay_s: float = 0.0, fail: str | None = None,
                 retryable: bool = False):
        self.text = text
        self.delay_s = delay_s
        self.fail = fail
        self.retryable = retryable
        self._lock = threading.Lock()
        # The last CALLS_KEPT only: a long benchmark (a 30-minute soak) must not grow it call by call.
        self._calls: deque[FakeCall] = deque(maxlen=CALLS_KEPT)

    @property
    def calls(self) -> list[FakeCall]:
        """The last CALLS_KEPT transcribe requests, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        with self._lock:
            self._calls.append(FakeCall(len(pcm), sample_rate, context))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail is not None:
            raise EngineError(self.name, self.fail, retryable=self.retryable)
        duration = len(pcm) / sample_rate if sample_rate else 0.0
        segments = (AsrSegment(self.text, 0.0, duration),) if self.text else ()
        return AsrResult(self.text, self.name, segments)

    def close(self) -> None:
        pass


def create(options: Mapping[str, Any], key: str) -> FakeAsr:
    """Options: text, delay_s, fail (error message), retryable, unavailable (refuse to start: fallback tests)."""
    s = Section(options, key)
    engine = FakeAsr(
        text=s.str("text", ""),
        delay_s=s.float("delay_s", 0.0, lo=0, hi=60),
        fail=s.str("fail", None),
        retryable=s.bool("retryable", False),
    )
    unavailable = s.bool("unavailable", False)
    s.done()
    if unavailable:
        raise EngineUnavailable(ENGINE_NAME, "configured as unavailable")
    return engine
