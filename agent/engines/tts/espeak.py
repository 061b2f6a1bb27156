"""espeak-ng TTS: robotic but always available and fast (tens of ms), the fallback for every other engine.

Runs `espeak-ng --stdout` once per text, text on stdin, and decodes its 22050 Hz WAV output.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import soundfile as sf

from agent.config_reader import Section
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts.base import AudioChunk

log = logging.getLogger(__name__)

NAME = "espeak"
# espeak-ng voice names: "ko", "en-us", "mb/mb-en1", variants as "ko+f2".
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+/-]*")


class EspeakTts:
    """One subprocess per `synthesize`; safe to call from many threads at once."""

    name = NAME
    # The voice per caller language when the config names none (Speaker reads it for English callers).
    language_voices = {"ko": "ko", "en": "en"}

    def __init__(self, binary: str = "espeak-ng", speed: int = 175, pitch: int = 50, timeout_s: float = 10.0,
                 default_voice: str = "ko"):
        path = shutil.which(binary)
        if path is None:
            raise EngineUnavailable(NAME, f"binary {binary!r} not found (install espeak-ng)")
        self.binary = path
        self.speed = speed
        self.pitch = pitch
        self.timeout_s = timeout_s
        self.default_voice = default_voice
        # Prompt caches key on this: a speed or pitch change must not reuse old audio.
        self.cache_tag = f"espeak-ng:s{speed}:p{pitch}"
        self._voices = self._list_voices()
        self._warned: set[str] = set()
        if self.default_voice.lower() not in self._voices:
            raise EngineUnavailable(NAME, f"default voice {default_voice!r} is not installed")

    def _list_voices(self) -> frozenset[str]:
        """Names `-v` accepts: language codes, voice names and voice files (lowercased)."""
        try:
            proc = subprocess.run([self.binary, "--voices"], capture_output=True, timeout=self.timeout_s,
                                  check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EngineUnavailable(NAME, f"{self.binary} --voices failed: {exc}") from exc
        names: set[str] = set()
        for line in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                names.update(c.lower() for c in (cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]))
        return frozenset(names)

    def _voice(self, voice: str) -> str:
        """`voice` if espeak-ng has it, else the default (after a fallback `voice` is another engine's)."""
        if _VOICE.fullmatch(voice) and voice.split("+", 1)[0].lower() in self._voices:
            return voice
        # Another engine's voice named by language ("en-Carter_man", "kr-Spk0_woman"): that language's voice.
        lang = {"kr": "ko"}.get(voice[:2].lower(), voice[:2].lower())
        chosen = lang if lang in self._voices and lang in self.language_voices else self.default_voice
        if voice not in self._warned:
            self._warned.add(voice)
            log.warning("espeak-ng has no voice %r; using %r", voice, chosen)
        return chosen

    def synthesize(self, text: str, voice: str) -> Iterator[AudioChunk]:
        text = " ".join(text.split())  # espeak-ng treats a newline as a pause; the chunker already split
        if not text:
            return
        voice = self._voice(voice)
        cmd = [self.binary, "-v", voice, "-s", str(self.speed), "-p", str(self.pitch), "-b", "1",
               "--stdin", "--stdout"]
        try:
            proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EngineError(NAME, f"no audio within {self.timeout_s:g} s", retryable=True) from exc
        except OSError as exc:
            raise EngineError(NAME, f"cannot run {self.binary}: {exc}", retryable=True) from exc
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
            raise EngineError(NAME, f"voice {voice!r}: {reason}")
        chunk = _decode(proc.stdout)
        if len(chunk.pcm):  # punctuation-only text gives no samples
            yield chunk

    def close(self) -> None:
        pass


def _decode(wav: bytes) -> AudioChunk:
    # With --stdout the RIFF sizes are placeholders (0x7ffff000); libsndfile reads up to the real end.
    try:
        pcm, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise EngineError(NAME, f"unreadable WAV output ({len(wav)} bytes): {exc}") from exc
    return AudioChunk(pcm=np.ascontiguousarray(pcm[:, 0]), sample_rate=int(rate))


def create(options: Mapping[str, Any], key: str) -> EspeakTts:
    s = Section(options, key)
    kwargs = {
        "binary": s.str("binary", "espeak-ng"),
        "speed": s.int("speed", 175, lo=80, hi=450),
        "pitch": s.int("pitch", 50, lo=0, hi=99),
        "timeout_s": s.float("timeout_s", 10.0, lo=0.5, hi=120),
        "default_voice": s.str("default_voice", "ko"),
    }
    s.done()
    return EspeakTts(**kwargs)
