"""Smart Turn v3.2 wrapper: our numpy features equal the reference extractor's, and the real model scores a
real Korean clip (speed is measured by `callagent bench turns`, not here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.media import smart_turn

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
CLIP = SPEECH_DIR / "ko/zeroth/104_003_0193.flac"


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, int]:
    if not CLIP.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    import soundfile as sf

    audio, rate = sf.read(CLIP, dtype="int16")
    return audio, rate


@pytest.fixture(scope="module")
def model() -> smart_turn.SmartTurn:
    if smart_turn.default_model_path() is None:
        pytest.skip("pipecat-ai (which ships smart-turn-v3.2-cpu.onnx) is not installed")
    return smart_turn.shared()


def test_window_keeps_the_last_8_s_and_pads_short_audio_at_the_start():
    pcm = np.arange(9 * 16000, dtype=np.int64).astype(np.int16)
    win = smart_turn.window(pcm, 16000)
    assert win.shape == (128000,) and win[-1] == pytest.approx(pcm[-1] / 32768.0)
    short = smart_turn.window(np.full(16000, 1000, np.int16), 16000)
    assert short.shape == (128000,) and not short[:-16000].any() and short[-1] == pytest.approx(1000 / 32768)
    assert smart_turn.window(np.full(8000, 1000, np.int16), 8000).shape == (128000,)  # resampled to 16 kHz


def test_features_match_the_reference_whisper_extractor(clip):
    reference = pytest.importorskip("pipecat.audio.turn.smart_turn._whisper_features")
    win = smart_turn.window(*clip)
    ours = smart_turn.features(win)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference.compute_whisper_log_mel_features(win), atol=1e-5)


def test_the_model_scores_a_finished_korean_sentence_as_a_probability(clip, model):
    audio, rate = clip
    end = model.score(audio, rate)  # the whole read sentence, ending in -다
    assert 0.0 <= end <= 1.0 and end > 0.5
    mid = model.score(audio[:6 * rate], rate)  # cut mid-sentence
    assert 0.0 <= mid <= 1.0 and mid < end
    assert model.score(audio[::2].copy(), rate // 2) == pytest.approx(model.score(audio[::2].copy(), rate // 2))
