"""Fixed prompts (greeting with the AI disclosure, apology, transfer notice, fillers) synthesized once.

Stored as WAV at the call's rate under a name derived from sha256(engine, voice, rate, text), so they are
reused across calls and restarts and the greeting plays without waiting for an engine.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agent.dialog.speakable import speakable
from agent.engines.errors import EngineError
from agent.engines.tts.base import TtsEngine
from agent.engines.tts.spool import check_rate, playable_dir, resample, write_wav_atomic

log = logging.getLogger(__name__)
_WAV_HEADER_BYTES = 44


class PromptCache:
    """Thread-safe: two threads asking for the same new prompt synthesize it once."""

    def __init__(self, engine: TtsEngine, cache_dir: Path, voice: str):
        self.engine = engine
        self.voice = voice
        self.dir = playable_dir(cache_dir, "TTS cache")
        # Engines with settings that change the sound (speed, pitch) expose `cache_tag`.
        self.engine_tag = str(getattr(engine, "cache_tag", engine.name))
        self.hits = 0
        self.misses = 0
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def path_for(self, text: str, rate: int) -> Path:
        """Where the prompt lives (whether or not it has been synthesized yet)."""
        # Keyed by the spoken form: a change in how "12,000원" is read re-synthesizes the prompt.
        key = "\0".join((self.engine_tag, self.voice, str(check_rate(rate)), speakable(_normalize(text))))
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        return self.dir / f"prompt-{digest}-{rate}.wav"

    def get(self, text: str, rate: int) -> Path:
        """Path of the prompt as 16-bit mono WAV at `rate`, synthesized now if it is not cached."""
        if not _normalize(text):
            raise ValueError("prompt text is empty")
        path = self.path_for(text, rate)
        if _present(path):
            self._count(hit=True)
            return path
        with self._lock_for(path.name):
            if _present(path):  # another thread made it while this one waited
                self._count(hit=True)
                return path
            pcm, engine_rate = self._synthesize(speakable(_normalize(text)))
            write_wav_atomic(path, resample(pcm, engine_rate, rate), rate)
            self._count(hit=False)
        log.info("prompt cached: %s (%d chars, %d Hz)", path.name, len(text), rate)
        return path

    def warm(self, texts: Iterable[str], rate: int) -> list[Path]:
        """Synthesizes every prompt not yet cached (call at start-up); returns their paths in order."""
        return [self.get(text, rate) for text in texts]

    def _synthesize(self, text: str) -> tuple[np.ndarray, int]:
        chunks = [c for c in self.engine.synthesize(text, self.voice) if len(c.pcm)]
        if not chunks:
            raise EngineError(self.engine.name, "no audio for a prompt")
        rate = chunks[0].sample_rate
        pcm = [c.pcm if c.sample_rate == rate else resample(c.pcm, c.sample_rate, rate) for c in chunks]
        return np.concatenate(pcm), rate

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _count(self, hit: bool) -> None:
        with self._guard:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


def _normalize(text: str) -> str:
    # Whitespace and Unicode form do not change the speech, so they must not change the key.
    return " ".join(unicodedata.normalize("NFC", text).split())


def _present(path: Path) -> bool:
    try:
        return path.stat().st_size > _WAV_HEADER_BYTES
    except OSError:
        return False
