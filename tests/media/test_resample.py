"""Resampling keeps a tone's frequency and the signal's length, whole-buffer and chunked."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agent.media.resample import StreamResampler, resample

RATES = (8000, 16000, 24000)
TONE_HZ = 1000.0


def tone(rate: int, seconds: float, dtype: type) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return (x * 32767).astype(np.int16) if dtype is np.int16 else x.astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> tuple[float, float]:
    """Frequency of the FFT peak and the bin width."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return np.argmax(spectrum) * rate / len(x), rate / len(x)


@pytest.mark.parametrize("src, dst", list(itertools.permutations(RATES, 2)))
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_tone_keeps_frequency_length_and_dtype(src, dst, dtype):
    x = tone(src, 1.0, dtype)
    y = resample(x, src, dst)
    assert y.dtype == np.dtype(dtype)
    assert abs(len(y) - dst) <= 0.01 * dst
    hz, bin_hz = peak_hz(y, dst)
    assert abs(hz - TONE_HZ) <= bin_hz
    # Loudness survives: no gross clipping or attenuation.
    assert np.abs(y.astype(np.float64)).max() == pytest.approx(np.abs(x.astype(np.float64)).max(), rel=0.05)


@pytest.mark.parametrize("src, dst", [(8000, 16000), (24000, 16000), (16000, 8000)])
def test_stream_resampler_over_20ms_chunks_matches_the_whole_buffer(src, dst):
    x = tone(src, 1.0, np.int16)
    stream = StreamResampler(src, dst)
    step = src // 50
    parts = [stream.process(x[i:i + step]) for i in range(0, len(x), step)]
    y = np.concatenate([*parts, stream.flush()])
    assert y.dtype == np.int16
    assert abs(len(y) - dst) <= 0.01 * dst
    hz, bin_hz = peak_hz(y, dst)
    assert abs(hz - TONE_HZ) <= bin_hz
    whole = resample(x, src, dst)
    n = min(len(y), len(whole))
    assert np.max(np.abs(y[:n].astype(int) - whole[:n].astype(int))) <= 2


def test_same_rate_is_a_no_op_and_bad_input_is_refused():
    x = tone(16000, 0.1, np.int16)
    assert resample(x, 16000, 16000) is x
    assert StreamResampler(16000, 16000).process(x) is x
    with pytest.raises(ValueError, match="int16 or float32"):
        resample(x.astype(np.float64), 16000, 8000)
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((10, 2), np.int16), 16000, 8000)
    with pytest.raises(ValueError, match="src_rate"):
        resample(x, 0, 8000)
    with pytest.raises(ValueError, match="opened for int16"):
        StreamResampler(16000, 8000).process(x.astype(np.float32))
