"""The one TTS interface: text in, a stream of mono PCM chunks out (first chunk as early as the engine can)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class AudioChunk:
    pcm: np.ndarray  # mono int16
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


class TtsEngine(Protocol):
    name: str

    def synthesize(self, text: str, voice: str) -> Iterator[AudioChunk]:
        """Yields audio for `text` as it is produced; raises agent.engines.errors.EngineError on failure."""
        ...

    def close(self) -> None: ...
