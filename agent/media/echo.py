"""Echo gate for a stereo fork: is a caller frame only the agent's own audio coming back down the line?

With mod_audio_fork `stereo` the worker gets the caller (left) and what the caller hears (right, the reference).
Line and handset echo is the reference delayed by 20–250 ms and attenuated 6–30 dB, so an echo-only caller frame
is almost a scaled copy of some delayed stretch of the reference: its normalised cross-correlation with the best
delay is near 1. Caller speech over the agent (double talk) is uncorrelated with the reference, which pulls the
correlation down, so it still counts as voice. Pure: frames in, a yes/no out; the caller keeps both in step.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MIN_DELAY_MS = 20
MAX_DELAY_MS = 250
# Share of the frame's energy the delayed reference must explain (corr²) to call it echo: 0.75² ≈ 56 %.
NCC_THRESHOLD = 0.75
# Reference quieter than this (dBFS over the window) is digital silence: nothing could echo.
REF_FLOOR_DBFS = -80.0
# Echo is quieter than its source (the line and handset lose ≥ 6 dB): a caller frame this much louder than any
# reference window cannot be echo. 3 dB leaves room for level differences between the two channels.
MAX_ECHO_GAIN = 10 ** (3 / 10)


def dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale (−inf for digital silence)."""
    if pcm.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    return 20 * np.log10(rms / 32768.0) if rms > 0 else float("-inf")


def split_stereo(data: bytes) -> tuple[bytes, bytes]:
    """Interleaved L16 stereo (whole sample pairs) → (left = caller, right = what the caller hears)."""
    pcm = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
    return pcm[:, 0].tobytes(), pcm[:, 1].tobytes()


class EchoGate:
    """Feed each 20 ms reference frame with `push_reference`, then ask `is_echo` about the caller frame of
    the same 20 ms; the reference history covers the whole delay window."""

    def __init__(self, rate: int, frame_ms: int = 20, *, min_delay_ms: int = MIN_DELAY_MS,
                 max_delay_ms: int = MAX_DELAY_MS, threshold: float = NCC_THRESHOLD,
                 ref_floor_dbfs: float = REF_FLOOR_DBFS):
        self._frame = rate * frame_ms // 1000
        self._min_lag = rate * min_delay_ms // 1000
        self._max_lag = rate * max_delay_ms // 1000
        self._threshold = threshold
        self._floor = (10 ** (ref_floor_dbfs / 20) * 32768.0) ** 2  # mean square
        keep = -(-(self._max_lag + self._frame) // self._frame)
        self._ref: deque[np.ndarray] = deque([np.zeros(self._frame)] * keep, maxlen=keep)
        n = self._max_lag - self._min_lag + 2 * self._frame
        self._nfft = 1 << (n - 1).bit_length()
        self.last_score = 0.0  # correlation of the last frame asked about, for logs and benches

    def push_reference(self, frame: bytes) -> None:
        ref = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        if ref.size != self._frame:
            raise ValueError(f"reference frame must be {self._frame} samples, got {ref.size}")
        self._ref.append(ref)

    def score(self, frame: bytes) -> float:
        """Best normalised correlation (0..1) of the caller frame with the reference at any echo delay."""
        caller = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        history = np.concatenate(self._ref)
        end = history.size
        # Reference samples that can echo into this frame: from (now − max delay) to (frame end − min delay).
        ref = history[end - self._frame - self._max_lag:end - self._min_lag]
        windows = np.cumsum(np.concatenate(([0.0], ref * ref)))
        ref_energy = windows[self._frame:] - windows[:-self._frame]
        loudest = float(ref_energy.max())
        caller_energy = float(caller @ caller)
        if loudest / self._frame < self._floor or caller_energy <= 0 or caller_energy > loudest * MAX_ECHO_GAIN:
            return 0.0
        spec = np.fft.rfft(ref, self._nfft) * np.conj(np.fft.rfft(caller, self._nfft))
        corr = np.fft.irfft(spec, self._nfft)[:ref_energy.size]
        ncc = np.abs(corr) / np.sqrt(caller_energy * np.maximum(ref_energy, 1e-9))
        return float(min(1.0, ncc.max()))

    def is_echo(self, frame: bytes) -> bool:
        self.last_score = self.score(frame)
        return self.last_score >= self._threshold
