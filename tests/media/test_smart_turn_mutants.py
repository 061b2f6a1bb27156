"""Smart Turn's inputs and loading, on synthetic audio: the log-mel features, the mel filters and the Hann window
equal the reference Whisper extractor shipped with the model; the score is what the model gives for those
features; a missing model or runtime is reported as unavailable, not as a crash."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agent.media import smart_turn

reference = pytest.importorskip("pipecat.audio.turn.smart_turn._whisper_features")


def _synthetic(seconds: float, rate: int = 16000, seed: int = 3) -> np.ndarray:
    """Voice-like int16 audio: a gliding harmonic tone over noise, with a quiet stretch (the floor matters)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 6000 + rng.standard_normal(t.size) * 300
    x[: rate // 2] *= 0.001
    return x.clip(-32000, 32000).astype(np.int16)


def test_the_features_equal_the_reference_extractor_on_8_s_of_voice():
    win = smart_turn.window(_synthetic(8.0), 16000)
    ours = smart_turn.features(win)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference.compute_whisper_log_mel_features(win), atol=2e-5)


def test_the_features_equal_the_reference_on_a_short_padded_utterance():
    win = smart_turn.window(_synthetic(1.5, seed=9), 16000)
    np.testing.assert_allclose(smart_turn.features(win), reference.compute_whisper_log_mel_features(win), atol=2e-5)


def test_the_mel_filters_and_window_equal_the_reference():
    np.testing.assert_allclose(smart_turn._mel_filters(), reference._MEL_FILTERS, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(smart_turn._WINDOW, reference._HANN_WINDOW)


def test_the_mel_scale_conversions_are_the_slaney_ones():
    hz = np.array([0.0, 500.0, 999.0, 1000.0, 1000.5, 2000.0, 8000.0])
    np.testing.assert_allclose(smart_turn._hz_to_mel(hz.copy()), reference._hertz_to_mel_slaney(hz))
    mels = np.array([0.0, 7.5, 14.9, 15.0, 25.0, 40.0])
    np.testing.assert_allclose(smart_turn._mel_to_hz(mels.copy()), reference._mel_to_hertz_slaney(mels))


def test_the_window_is_the_last_8_s_at_16k_scaled_to_plus_minus_one():
    pcm = _synthetic(9.0)
    win = smart_turn.window(pcm, 16000)
    np.testing.assert_array_equal(win, pcm[-128000:].astype(np.float32) / 32768.0)
    exact = _synthetic(8.0)
    np.testing.assert_array_equal(smart_turn.window(exact, 16000), exact.astype(np.float32) / 32768.0)
    short = smart_turn.window(pcm[:100], 16000)
    assert not short[:-100].any() and np.array_equal(short[-100:], pcm[:100].astype(np.float32) / 32768.0)


# --- finding and loading the model ------------------------------------------------------------------------

def test_the_model_is_found_inside_the_installed_wheel():
    if importlib.util.find_spec("pipecat") is None:
        pytest.skip("pipecat-ai (which ships smart-turn-v3.2-cpu.onnx) is not installed")
    path = smart_turn.default_model_path()
    assert path is not None
    assert path.is_file() and path.name == "smart-turn-v3.2-cpu.onnx"
    assert path.parent == Path(importlib.util.find_spec("pipecat").origin).parent / "audio/turn/smart_turn/data"


@pytest.mark.parametrize("spec", [None, SimpleNamespace(submodule_search_locations=[]),
                                  SimpleNamespace(submodule_search_locations=None)])
def test_no_wheel_means_no_model(monkeypatch, spec):
    monkeypatch.setattr(smart_turn.importlib.util, "find_spec", lambda _name: spec)
    assert smart_turn.default_model_path() is None


def test_a_wheel_without_the_model_file_means_no_model(monkeypatch, tmp_path):
    (tmp_path / "audio/turn/smart_turn/data").mkdir(parents=True)
    monkeypatch.setattr(smart_turn.importlib.util, "find_spec",
                        lambda _name: SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    assert smart_turn.default_model_path() is None
    (tmp_path / "audio/turn/smart_turn/data" / "smart-turn-v3.2-cpu.onnx").write_bytes(b"x")
    assert smart_turn.default_model_path() == tmp_path / "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


def test_a_missing_model_is_unavailable_not_a_crash(tmp_path, monkeypatch):
    with pytest.raises(smart_turn.SmartTurnUnavailable, match=r"^smart-turn-v3.2-cpu.onnx not found"):
        smart_turn.SmartTurn(tmp_path / "absent.onnx")
    monkeypatch.setattr(smart_turn, "default_model_path", lambda: None)
    with pytest.raises(smart_turn.SmartTurnUnavailable, match="not found"):
        smart_turn.SmartTurn()


def test_a_missing_runtime_is_unavailable(tmp_path, monkeypatch):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(smart_turn.SmartTurnUnavailable, match="^onnxruntime is not importable"):
        smart_turn.SmartTurn(model)


@pytest.fixture(scope="module")
def model() -> smart_turn.SmartTurn:
    if smart_turn.default_model_path() is None:
        pytest.skip("pipecat-ai (which ships smart-turn-v3.2-cpu.onnx) is not installed")
    return smart_turn.shared()


def test_the_score_is_the_model_s_probability_for_the_reference_features(model):
    import onnxruntime as ort

    pcm = _synthetic(3.0)
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    feats = reference.compute_whisper_log_mel_features(smart_turn.window(pcm, 16000))[None]
    expected = float(np.asarray(session.run(None, {"input_features": feats})[0]).reshape(-1)[0])
    assert model.score(pcm, 16000) == pytest.approx(expected, abs=1e-4)
    assert 0.0 <= expected <= 1.0
    # 8 kHz audio is resampled to the model's rate first: a different window, the same kind of answer.
    at8k = model.score(pcm[::2].copy(), 8000)
    feats8 = reference.compute_whisper_log_mel_features(smart_turn.window(pcm[::2].copy(), 8000))[None]
    assert at8k == pytest.approx(float(np.asarray(session.run(None, {"input_features": feats8})[0]).reshape(-1)[0]),
                                 abs=1e-4)


def test_every_call_shares_one_model(model, monkeypatch):
    assert smart_turn.shared() is model and model.path == smart_turn.default_model_path()
    monkeypatch.setattr(smart_turn, "_shared", None)  # as in a fresh worker process
    first = smart_turn.shared()
    assert isinstance(first, smart_turn.SmartTurn) and smart_turn.shared() is first


def test_a_model_loaded_on_its_own_scores_as_the_shared_one(model):
    # Built here rather than taken from the process-wide one, so its own loading (session options, provider) runs.
    own = smart_turn.SmartTurn(smart_turn.default_model_path())
    assert own.path == model.path
    pcm = _synthetic(2.0, seed=11)
    assert own.score(pcm, 16000) == pytest.approx(model.score(pcm, 16000), abs=1e-5)
