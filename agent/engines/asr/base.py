"""The one ASR interface: a finished utterance of 16-bit PCM in, text segments out.

Engines are blocking and thread-safe per instance unless they say otherwise; the worker calls them from a
thread pool so the event loop that reads audio never waits on a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class AsrContext:
    """What the caller's channel tells the recogniser: hotwords (industry pack + tenant extras), language."""

    hotwords: tuple[str, ...] = ()
    language: str = "ko"
    call_id: str = ""

    def prompt_text(self) -> str:
        """Hotwords as one context string (VibeVoice takes free text; see docs/models.md)."""
        return ", ".join(self.hotwords)


@dataclass(frozen=True)
class AsrSegment:
    text: str
    start: float  # seconds from the start of the utterance audio
    end: float
    speaker: int | None = None


@dataclass(frozen=True)
class AsrResult:
    text: str
    engine: str
    segments: tuple[AsrSegment, ...] = field(default_factory=tuple)


class AsrEngine(Protocol):
    name: str

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        """`pcm` is mono int16; raises agent.engines.errors.EngineError on failure."""
        ...

    def close(self) -> None: ...


class UtteranceDecoder(Protocol):
    """One utterance decoded while it is spoken: audio is accepted as it arrives, `result()` at the end.

    Engines that decode incrementally (Vosk/Kaldi) offer `open_utterance`, so at the end of speech only the
    last few hundred milliseconds remain to decode instead of the whole utterance.
    """

    def accept(self, pcm: np.ndarray) -> None: ...

    def result(self) -> AsrResult: ...
