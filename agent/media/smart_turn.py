"""Smart Turn v3.2: an audio end-of-turn model (Whisper-encoder classifier, ONNX, BSD-2) from the pipecat-ai wheel.

It reads the last 8 s of an utterance at 16 kHz as 80-band Whisper log-mel features and returns the probability
that the speaker has finished. The features are computed here with numpy (the same math as Whisper's feature
extractor, which is what the model was trained on) so nothing of pipecat is imported. On Korean phone speech it
scores nearly everything 0.9–0.99, so callers use it through calibrated cut-offs (agent.media.turn_end), never 0.5.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from agent.media.resample import resample

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_RATE = 16000
WINDOW_S = 8
N_FFT = 400
HOP = 160
N_MELS = 80


class SmartTurnUnavailable(RuntimeError):
    """The model file or onnxruntime is missing."""


def default_model_path() -> Path | None:
    """The model shipped inside the installed pipecat-ai wheel (found without importing pipecat)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "audio/turn/smart_turn/data" / MODEL_FILE
    return path if path.is_file() else None


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    # Slaney scale: linear below 1 kHz, logarithmic above (librosa's default, used by Whisper).
    mels = 3.0 * freq / 200.0
    log = freq >= 1000.0
    mels[log] = 15.0 + np.log(freq[log] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freq = 200.0 * mels / 3.0
    log = mels >= 15.0
    freq[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log] - 15.0))
    return freq


def _mel_filters() -> np.ndarray:
    """(N_FFT/2+1, N_MELS) Slaney-normalised triangular filters from 0 Hz to 8 kHz."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([8000.0]))[0], N_MELS + 2))
    bins = np.linspace(0, MODEL_RATE // 2, N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    widths = np.diff(edges)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


_FILTERS = _mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window


def features(audio: np.ndarray) -> np.ndarray:
    """Whisper log-mel features (80, 800) of exactly 8 s of float audio at 16 kHz, normalised to zero mean."""
    x = np.asarray(audio, dtype=np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2
    log_spec = np.log10(np.maximum(1e-10, power @ _FILTERS)).T[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def window(pcm: np.ndarray, rate: int) -> np.ndarray:
    """The last 8 s of int16 `pcm` as float at 16 kHz, zero-padded at the start when shorter."""
    audio = resample(np.asarray(pcm, dtype=np.int16), rate, MODEL_RATE).astype(np.float32) / 32768.0
    n = WINDOW_S * MODEL_RATE
    if audio.size >= n:
        return audio[-n:]
    return np.pad(audio, (n - audio.size, 0))


class SmartTurn:
    """One ONNX session on one CPU thread; `score` is safe to call from several threads at once."""

    def __init__(self, model_path: Path | None = None):
        path = model_path or default_model_path()
        if path is None or not Path(path).is_file():
            raise SmartTurnUnavailable(f"{MODEL_FILE} not found (is pipecat-ai installed?)")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise SmartTurnUnavailable(f"onnxruntime is not importable: {exc}") from exc
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1  # the worker's thread pool already runs calls side by side
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self._session: Any = ort.InferenceSession(str(path), sess_options=options,
                                                   providers=["CPUExecutionProvider"])

    def score(self, pcm: np.ndarray, rate: int) -> float:
        """Probability (0..1) that the int16 utterance audio `pcm`, ending now, is a finished turn."""
        feats = features(window(pcm, rate))[None, :, :]
        out = self._session.run(None, {"input_features": feats})
        return float(np.asarray(out[0]).reshape(-1)[0])


_shared: SmartTurn | None = None
_shared_lock = threading.Lock()


def shared() -> SmartTurn:
    """One model per process, loaded on first use (every call shares it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SmartTurn()
        return _shared
