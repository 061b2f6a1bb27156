"""Voice activity detection over 20 ms frames of 16-bit mono PCM: one interface, a webrtcvad implementation.

A VAD instance keeps per-stream state (webrtcvad adapts to the noise floor), so use one per call.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import webrtcvad

FRAME_MS = 20
VAD_RATES = (8000, 16000, 32000, 48000)  # what webrtcvad accepts
SILENCE_DBFS = -120.0  # the level given to digital silence (a floor, so levels stay finite)


def frame_bytes(rate: int, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one frame of 16-bit mono PCM."""
    return rate * frame_ms // 1000 * 2


class Vad(Protocol):
    def is_speech(self, frame: bytes, rate: int) -> bool:
        """`frame` is exactly one 20 ms frame of L16 mono at `rate`."""
        ...


class WebRtcVad:
    """webrtcvad (the WebRTC GMM detector); aggressiveness 0 (keeps most) to 3 (drops most non-speech)."""

    def __init__(self, aggressiveness: int = 2):
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness must be 0..3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes, rate: int) -> bool:
        if rate not in VAD_RATES:
            raise ValueError(f"VAD sample rate must be one of {VAD_RATES}, got {rate}")
        if len(frame) != frame_bytes(rate):
            raise ValueError(f"VAD frame must be {frame_bytes(rate)} bytes at {rate} Hz, got {len(frame)}")
        return self._vad.is_speech(frame, rate)


def level_dbfs(frame: bytes) -> float:
    """RMS level of a frame of L16 in dB below full scale (-120 for digital silence)."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.dot(samples, samples)) / samples.size) / 32768.0
    return max(SILENCE_DBFS, 20 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


class SpeechTail:
    """Where a word really ends: webrtcvad keeps calling a fading word "speech" for 100-180 ms after its level
    has dropped (its hangover; measured on the phone band against the −40 dBFS end of the source), and every
    end of turn would wait that out. Inside one utterance a voiced frame more than `drop_db` below the loudest
    voiced frame so far is taken as silence, so the end-of-turn silence counts from the last frame of real
    voice. Relative to the caller's own level, so a quiet line is not cut. `drop_db` 0 turns it off."""

    def __init__(self, drop_db: float):
        self.drop_db = drop_db
        self._peak = SILENCE_DBFS

    def reset(self) -> None:
        """A new utterance (candidate): its own loudest frame is the reference."""
        self._peak = SILENCE_DBFS

    def voiced(self, frame: bytes, vad_voiced: bool) -> bool:
        if not vad_voiced or self.drop_db <= 0:
            return vad_voiced
        level = level_dbfs(frame)
        self._peak = max(self._peak, level)
        return level >= self._peak - self.drop_db
