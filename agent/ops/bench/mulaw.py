"""G.711 μ-law per ITU-T G.711, following the G.191 reference `ulaw_compress` / `ulaw_expand`, in numpy.

16-bit linear in, 8-bit code words out (bits inverted, sign bit set for >= 0): 0 → 0xFF, the loudest
positive sample → 0x80. `telephone_band` is what a phone call does to speech: 8 kHz, μ-law, back up.
"""

from __future__ import annotations

import numpy as np

from agent.media.resample import resample

PHONE_RATE = 8000
_BIAS = 33          # in 14-bit units (132 in 16-bit units)
_MAX_14BIT = 0x1FFF


def encode(pcm: np.ndarray) -> np.ndarray:
    """int16 linear PCM → uint8 μ-law code words."""
    x = np.asarray(pcm)
    if x.dtype != np.int16:
        raise ValueError(f"μ-law encode takes int16 PCM, got {x.dtype}")
    x = x.astype(np.int32)
    # One's complement for negatives, as the reference does: -1 and 0 share magnitude 0.
    mag = np.where(x < 0, (~x) >> 2, x >> 2) + _BIAS
    mag = np.minimum(mag, _MAX_14BIT)
    # Segment number 1..8: one more than the position of the highest set bit above bit 5.
    segno = np.ones_like(mag)
    i = mag >> 6
    while np.any(i):
        segno += i != 0
        i >>= 1
    high = 8 - segno
    low = 0x0F - ((mag >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    return code.astype(np.uint8)


def decode(codes: np.ndarray) -> np.ndarray:
    """uint8 μ-law code words → int16 linear PCM (the midpoint of each quantisation step)."""
    c = np.asarray(codes)
    if c.dtype != np.uint8:
        raise ValueError(f"μ-law decode takes uint8 code words, got {c.dtype}")
    c = c.astype(np.int32)
    sign = np.where(c < 0x80, -1, 1)
    inv = (~c) & 0xFF
    exponent = (inv >> 4) & 0x07
    mantissa = inv & 0x0F
    step = 4 << (exponent + 1)
    linear = (0x80 << exponent) + step * mantissa + step // 2 - 4 * _BIAS
    return (sign * linear).astype(np.int16)


def telephone_band(pcm: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    """int16 speech as a phone line carries it: resampled to 8 kHz, μ-law coded and decoded, then `out_rate`."""
    narrow = resample(np.asarray(pcm, dtype=np.int16), rate, PHONE_RATE)
    return resample(decode(encode(narrow)), PHONE_RATE, out_rate)
