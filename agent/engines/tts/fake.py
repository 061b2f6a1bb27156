"""Deterministic TTS for tests: a 440 Hz tone whose length is proportional to the text.

Options make it slow (`delay_s`), streaming (`chunk_ms`), failing (`fail`, `fail_on`) or absent
(`unavailable`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from agent.config_reader import Section
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts.base import AudioChunk

NAME = "fake"
TONE_HZ = 440.0


class FakeTts:
    """`calls` records every synthesized text, in order, so tests can count engine work."""

    name = NAME

    def __init__(self, sample_rate: int = 16000, ms_per_char: int = 60, delay_s: float = 0.0,
                 chunk_ms: int = 0, fail: bool = False, fail_on: str | None = None):
        self.sample_rate = sample_rate
        self.ms_per_char = ms_per_char
        self.delay_s = delay_s
        self.chunk_ms = chunk_ms
        self.fail = fail
        self.fail_on = fail_on
        self.cache_tag = f"fake:{sample_rate}:{ms_per_char}"
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def samples_for(self, text: str) -> int:
        return len(text) * self.ms_per_char * self.sample_rate // 1000

    def synthesize(self, text: str, voice: str) -> Iterator[AudioChunk]:
        with self._lock:
            self.calls.append(text)
        if self.fail or (self.fail_on is not None and self.fail_on in text):
            raise EngineError(NAME, "configured to fail", retryable=True)
        n = self.samples_for(text)
        if n == 0:
            return
        t = np.arange(n) / self.sample_rate
        pcm = (0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        step = self.chunk_ms * self.sample_rate // 1000 if self.chunk_ms > 0 else n
        for start in range(0, n, step):
            if self.delay_s:
                time.sleep(self.delay_s)  # per chunk, like a model generating audio
            yield AudioChunk(pcm=pcm[start : start + step], sample_rate=self.sample_rate)

    def close(self) -> None:
        pass


def create(options: Mapping[str, Any], key: str) -> FakeTts:
    s = Section(options, key)
    if s.bool("unavailable", False):
        raise EngineUnavailable(NAME, "configured as unavailable")
    kwargs = {
        "sample_rate": s.int("sample_rate", 16000, lo=8000, hi=48000),
        "ms_per_char": s.int("ms_per_char", 60, lo=0, hi=1000),
        "delay_s": s.float("delay_s", 0.0, lo=0, hi=30),
        "chunk_ms": s.int("chunk_ms", 0, lo=0, hi=10000),
        "fail": s.bool("fail", False),
        "fail_on": s.str("fail_on", None),
    }
    s.done()
    return FakeTts(**kwargs)
