"""The benchmark's G.711 μ-law codec: ITU-T code points, the quantisation error bound, the telephone band."""

from __future__ import annotations

import numpy as np
import pytest

from agent.ops.bench.mulaw import decode, encode, telephone_band

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def _enc(*values: int) -> list[int]:
    return [int(c) for c in encode(np.array(values, dtype=np.int16))]


def _dec(*codes: int) -> list[int]:
    return [int(v) for v in decode(np.array(codes, dtype=np.uint8))]


def test_known_code_points():
    # Code words are bit-inverted; bit 7 set means positive (G.711 Table 2a, G.191 ulaw_compress).
    assert _enc(0, -1, 32767, -32768) == [0xFF, 0x7F, 0x80, 0x00]
    assert _dec(0x80, 0x00, 0xFF, 0x7F) == [32124, -32124, 0, 0]
    # First steps of segment 0 (step 8) and the first value of segment 1 (step 16), in 16-bit units.
    assert _dec(0xFE, 0xFD, 0xEF) == [8, 16, 132]
    assert _enc(8, 16, 132) == [0xFE, 0xFD, 0xEF]


def test_negative_values_use_ones_complement_magnitude():
    neg = ALL_INT16[ALL_INT16 < 0]
    assert np.array_equal(encode(neg), encode((-neg.astype(np.int32) - 1).astype(np.int16)) & 0x7F)


def test_every_code_word_survives_a_round_trip():
    codes = np.arange(256, dtype=np.uint8)
    back = encode(decode(codes))
    assert np.array_equal(back[codes != 0x7F], codes[codes != 0x7F])
    assert back[0x7F] == 0xFF  # "negative zero" decodes to 0, which encodes as positive zero


def test_round_trip_error_is_at_most_half_a_step():
    # Half a step in segment s is 2^(s+2) and the biased magnitude is at least 2^(s+7), so the error is at
    # most (|x| + 132) / 32 everywhere below the clip level.
    y = decode(encode(ALL_INT16)).astype(np.int32)
    x = ALL_INT16.astype(np.int32)
    inside = np.abs(x) <= 32635
    assert np.all(np.abs(x - y)[inside] <= (np.abs(x[inside]) + 132) / 32)
    assert np.max(np.abs(x - y)[~inside]) <= 32768 - 32124


def test_codec_rejects_other_dtypes():
    with pytest.raises(ValueError):
        encode(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError):
        decode(np.zeros(4, dtype=np.int16))


def _tone(freq: float, rate: int = 16000, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_telephone_band_keeps_speech_band_and_removes_what_8khz_cannot_carry():
    voice = telephone_band(_tone(1000), 16000, 16000)
    assert abs(len(voice) - 8000) <= 2 and voice.dtype == np.int16
    ref = _tone(1000)[:len(voice)].astype(float)
    core = slice(400, len(voice) - 400)  # away from the resampler's edges
    noise = voice[core].astype(float) - ref[core]
    snr_db = 10 * np.log10(np.mean(ref[core] ** 2) / np.mean(noise ** 2))
    assert snr_db > 25  # μ-law's ~38 dB less resampling error
    high = telephone_band(_tone(6000), 16000, 16000).astype(float)
    assert np.sqrt(np.mean(high[core] ** 2)) < 0.02 * 8000 / np.sqrt(2)


def test_matches_an_independent_implementation_where_the_references_agree():
    audioop = pytest.importorskip("audioop")  # in the standard library up to Python 3.12
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(decode(codes), np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), dtype=np.int16))
    # Non-negative samples encode alike; for negatives G.191 takes the one's complement (tested above), while
    # audioop negates, so the two differ at some step edges.
    pos = ALL_INT16[ALL_INT16 >= 0]
    assert np.array_equal(encode(pos), np.frombuffer(audioop.lin2ulaw(pos.tobytes(), 2), dtype=np.uint8))
