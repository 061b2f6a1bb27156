"""In-band DTMF: the tones a caller's keypad puts in the audio, and the detector `start_dtmf` attaches.

On a trunk without RFC 2833 the digits are only tones in the media; FreeSWITCH reports them (DTMF event,
`DTMF-Source: INBAND_AUDIO`) only once `start_dtmf` has put a detector bug on the channel (freeswitch.md
§1.8, §4). The detector is a Goertzel filter bank over each 20 ms frame.
"""

from __future__ import annotations

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
MIN_FRAMES = 2              # 40 ms of a steady pair before a digit counts (ITU Q.24 asks for ≥ 40 ms)
MIN_RATIO = 0.6             # the row + column tones carry most of the frame's energy
MIN_LEVEL = 1e-5            # mean square (of samples in [-1, 1]) below which a frame is silence


def tones(digits: str, rate: int = 8000, on_ms: int = 100, off_ms: int = 100,
          level_dbfs: float = -10.0) -> np.ndarray:
    """float32 audio of the keypad tones for `digits`, each `on_ms` long with `off_ms` gaps after."""
    amp = 10.0 ** (level_dbfs / 20.0) / 2
    parts = []
    t = np.arange(int(rate * on_ms / 1000)) / rate
    for d in digits:
        row = next(i for i, keys in enumerate(KEYS) if d in keys)
        col = KEYS[row].index(d)
        parts.append(amp * (np.sin(2 * np.pi * ROWS[row] * t) + np.sin(2 * np.pi * COLS[col] * t)))
        parts.append(np.zeros(int(rate * off_ms / 1000)))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)


def _basis(freqs: tuple[float, ...], n: int, rate: int) -> np.ndarray:
    """Single-bin DFTs at the DTMF frequencies (what a Goertzel filter computes), one row per tone."""
    return np.exp(-2j * np.pi * np.outer(freqs, np.arange(n)) / rate)


class InbandDetector:
    """Feeds 20 ms L16 frames at the channel rate; returns a digit the moment it is confirmed."""

    def __init__(self, rate: int):
        self.rate = rate
        self._last: str | None = None
        self._count = 0
        self._reported = False
        self._bases: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def classify(self, frame: np.ndarray) -> str | None:
        x = frame.astype(np.float64) / 32768.0
        energy = float(np.mean(x * x))
        if energy < MIN_LEVEL:
            return None
        n = len(x)
        if n not in self._bases:
            self._bases[n] = (_basis(ROWS, n, self.rate), _basis(COLS, n, self.rate))
        row_basis, col_basis = self._bases[n]
        rows, cols = np.abs(row_basis @ x) ** 2, np.abs(col_basis @ x) ** 2
        r, c = int(np.argmax(rows)), int(np.argmax(cols))
        # A tone of amplitude a gives |bin|^2 ~ (a N / 2)^2 and mean square a^2 / 2: share = sum / (N^2 E / 2).
        share = (rows[r] + cols[c]) / (n * n * energy / 2.0)
        if share < MIN_RATIO:
            return None
        return KEYS[r][c]

    def feed(self, frame: np.ndarray) -> str | None:
        digit = self.classify(frame)
        if digit is None or digit != self._last:
            self._last, self._count, self._reported = digit, 1 if digit else 0, False
            return None
        self._count += 1
        if self._count >= MIN_FRAMES and not self._reported:
            self._reported = True
            return digit
        return None
