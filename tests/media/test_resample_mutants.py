"""Resampling: exact output lengths (a stream must not gain samples at its end) and the refusal of rates that
are not positive integers, naming the bad one."""

from __future__ import annotations

import numpy as np
import pytest

from agent.media.resample import StreamResampler, resample


def _voice(rate: int) -> np.ndarray:
    return (np.sin(np.arange(rate) / 7) * 8000).astype(np.int16)  # one second


@pytest.mark.parametrize("src, dst", [(8000, 16000), (16000, 8000)])
def test_a_second_streamed_in_20ms_chunks_is_exactly_a_second_out(src, dst):
    x = _voice(src)
    stream = StreamResampler(src, dst)
    step = src // 50
    parts = [stream.process(x[i:i + step]) for i in range(0, len(x), step)]
    assert len(np.concatenate([*parts, stream.flush()])) == dst


def test_a_single_sample_is_resampled_not_passed_through():
    out = resample(np.array([1000], np.int16), 8000, 16000)
    assert len(out) == 2


def test_an_empty_buffer_comes_back_empty():
    x = np.zeros(0, np.int16)
    assert resample(x, 8000, 16000) is x


@pytest.mark.parametrize("src, dst, name", [
    (True, 8000, "src_rate"), (16000.0, 8000, "src_rate"), (16000, -1, "dst_rate"), (16000, 0, "dst_rate"),
    (16000, False, "dst_rate"),
])
def test_a_rate_that_is_not_a_positive_integer_is_refused_by_name(src, dst, name):
    with pytest.raises(ValueError, match=f"^{name} must be a positive integer"):
        resample(np.zeros(10, np.int16), src, dst)
    with pytest.raises(ValueError, match=f"^{name} must be a positive integer"):
        StreamResampler(src, dst)


def test_one_hertz_is_a_positive_rate():
    x = np.ones(4, np.int16)
    assert resample(x, 1, 1) is x
