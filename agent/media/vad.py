"""Voice activity detection over 20 ms frames of 16-bit mono PCM: one interface, a webrtcvad implementation.

A VAD instance keeps per-stream state (webrtcvad adapts to the noise floor), so use one per call.
"""

from __future__ import annotations

from typing import Protocol

import webrtcvad

FRAME_MS = 20
VAD_RATES = (8000, 16000, 32000, 48000)  # what webrtcvad accepts


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
