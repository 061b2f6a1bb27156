"""Sample-rate conversion with soxr, for whole buffers and for chunked streams; int16 or float32 in and out."""

from __future__ import annotations

import numpy as np
import soxr

_DTYPES = (np.dtype(np.int16), np.dtype(np.float32))
# "HQ" is soxr's default; speech for ASR/TTS needs no more, and VHQ costs several times the CPU.
QUALITY = "HQ"


def _check(pcm: np.ndarray, src_rate: int, dst_rate: int) -> None:
    if pcm.dtype not in _DTYPES:
        raise ValueError(f"resample takes int16 or float32 PCM, got {pcm.dtype}")
    if pcm.ndim != 1:
        raise ValueError(f"resample takes mono (1-D) PCM, got shape {pcm.shape}")
    for name, rate in (("src_rate", src_rate), ("dst_rate", dst_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"{name} must be a positive integer, got {rate!r}")


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Returns `pcm` at `dst_rate` with the same dtype; the input itself when the rates match."""
    _check(pcm, src_rate, dst_rate)
    if src_rate == dst_rate or pcm.size == 0:
        return pcm
    return soxr.resample(pcm, src_rate, dst_rate, quality=QUALITY)


class StreamResampler:
    """Converts a stream chunk by chunk with no clicks at chunk edges; call `flush` once at the end."""

    def __init__(self, src_rate: int, dst_rate: int, *, dtype: type | np.dtype = np.int16):
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self.dtype = np.dtype(dtype)
        _check(np.zeros(0, self.dtype), src_rate, dst_rate)
        self._stream = (
            None if src_rate == dst_rate
            else soxr.ResampleStream(src_rate, dst_rate, 1, dtype=self.dtype.name, quality=QUALITY)
        )

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resampled output available so far; may be shorter than the chunk's share (filter delay)."""
        return self._run(chunk, last=False)

    def flush(self) -> np.ndarray:
        """The tail held back by the filter."""
        return self._run(np.zeros(0, self.dtype), last=True)

    def _run(self, chunk: np.ndarray, *, last: bool) -> np.ndarray:
        if chunk.dtype != self.dtype:
            raise ValueError(f"stream was opened for {self.dtype}, got a {chunk.dtype} chunk")
        _check(chunk, self.src_rate, self.dst_rate)
        if self._stream is None:
            return chunk
        return self._stream.resample_chunk(chunk, last=last)
