"""webrtcvad behind the Vad interface: silence is not speech, real speech is, bad frames are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.media.vad import WebRtcVad, frame_bytes

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"


def test_frame_sizes():
    assert frame_bytes(16000) == 640 and frame_bytes(8000) == 320


@pytest.mark.parametrize("rate", [8000, 16000])
def test_digital_silence_and_low_noise_are_not_speech(rate):
    vad = WebRtcVad(2)
    assert not vad.is_speech(bytes(frame_bytes(rate)), rate)
    # Over 3 s of low hiss, after the detector has adapted, hardly any frame counts as speech.
    noise = np.random.default_rng(1).normal(0, 30, rate * 3).astype(np.int16).tobytes()
    n = frame_bytes(rate)
    decisions = [vad.is_speech(noise[i:i + n], rate) for i in range(0, len(noise), n)]
    assert sum(decisions) / len(decisions) < 0.1


@pytest.mark.speech
def test_most_frames_of_a_spoken_sentence_are_speech():
    import soundfile as sf

    clip = SPEECH_DIR / "ko/picovoice/leopard_test_ko.wav"
    if not clip.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    audio, rate = sf.read(clip, dtype="int16")
    spoken = audio[int(0.8 * rate):int(3.3 * rate)].tobytes()  # inside the sentence
    n = frame_bytes(rate)
    vad = WebRtcVad(2)
    decisions = [vad.is_speech(spoken[i:i + n], rate) for i in range(0, len(spoken) - n + 1, n)]
    assert sum(decisions) / len(decisions) > 0.7


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRtcVad(4)
    vad = WebRtcVad(0)
    with pytest.raises(ValueError, match="640 bytes"):
        vad.is_speech(bytes(641), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        vad.is_speech(bytes(882), 22050)
