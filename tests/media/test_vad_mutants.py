"""The VAD behind its interface: frame sizes at each rate and length, the aggressiveness range, which rates and
frames it accepts (and what it says when it refuses), and that a voiced tone is speech at every aggressiveness."""

from __future__ import annotations

import numpy as np
import pytest

from agent.media.vad import WebRtcVad, frame_bytes


def test_frame_sizes_for_other_lengths():
    assert frame_bytes(16000, 10) == 320 and frame_bytes(8000, 30) == 480 and frame_bytes(48000) == 1920


def _vowel(rate: int, ms: int = 600) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 720, 1100), start=1))
    return (wave / np.max(np.abs(wave)) * 12000).astype("<i2").tobytes()


@pytest.mark.parametrize("aggressiveness", [0, 3])
@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_a_voiced_tone_is_speech_at_every_rate_and_aggressiveness(rate, aggressiveness):
    vad = WebRtcVad(aggressiveness)
    audio, n = _vowel(rate), frame_bytes(rate)
    decisions = [vad.is_speech(audio[i:i + n], rate) for i in range(0, len(audio) - n + 1, n)]
    assert sum(decisions) >= len(decisions) - 3  # the detector may take a frame or two to settle


@pytest.mark.parametrize("aggressiveness", [-1, 4])
def test_an_aggressiveness_outside_0_to_3_is_refused(aggressiveness):
    with pytest.raises(ValueError, match=f"^VAD aggressiveness must be 0..3, got {aggressiveness}$"):
        WebRtcVad(aggressiveness)


def test_a_rate_webrtcvad_cannot_take_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^VAD sample rate must be one of \(8000, 16000, 32000, 48000\), got 22050$"):
        WebRtcVad(2).is_speech(bytes(882), 22050)


@pytest.mark.parametrize("size", [319, 321, 640, 0])
def test_a_frame_that_is_not_20_ms_is_refused_with_its_size(size):
    with pytest.raises(ValueError, match=f"^VAD frame must be 320 bytes at 8000 Hz, got {size}$"):
        WebRtcVad(2).is_speech(bytes(size), 8000)


def test_the_configured_aggressiveness_reaches_the_detector():
    # The same loud hiss: the least aggressive setting keeps most of it as speech, the most aggressive drops it.
    hiss = np.random.default_rng(2).normal(0, 1000, 16000 * 3).astype(np.int16).tobytes()

    def kept(aggressiveness: int) -> int:
        vad = WebRtcVad(aggressiveness)
        return sum(vad.is_speech(hiss[i:i + 640], 16000) for i in range(0, len(hiss), 640))

    assert kept(0) > 100 and kept(3) < 20


def test_a_speech_tail_of_one_db_still_cuts_a_frame_a_few_db_down():
    from agent.media.vad import SpeechTail

    def square(amplitude: float) -> bytes:
        return np.where(np.arange(320) % 2, amplitude, -amplitude).astype("<i2").tobytes()

    tail = SpeechTail(1.0)
    assert tail.voiced(square(4000), True)
    assert not tail.voiced(square(2800), True)  # −3.1 dB from the loudest frame: past a 1 dB drop
    assert tail.voiced(square(3900), True)  # −0.2 dB: still voice
