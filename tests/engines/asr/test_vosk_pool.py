"""Warm Kaldi recognisers reused across utterances (agent.engines.asr.vosk.RecognizerPool).

`Recogniser` follows Vosk's KaldiRecognizer as `src/recognizer.cc` defines it: a state machine of INITIALIZED,
RUNNING, ENDPOINT and FINALIZED; AcceptWaveform after FINALIZED builds a new feature pipeline (CMVN, i-vector) and
moves the time origin (`samples_round_start_`) past every sample fed so far, while after ENDPOINT (Result, Reset)
the same pipeline goes on; Result/FinalResult/PartialResult give nothing unless RUNNING; word times count
from the recogniser's first sample. Each accepted chunk of voice (non-zero samples) is one word here.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from agent.engines.asr import vosk as vosk_engine
from agent.engines.errors import EngineError

RATE = vosk_engine.MODEL_RATE


class Recogniser:
    made = 0

    def __init__(self, model: object, rate: float):
        Recogniser.made += 1
        self.state = "INITIALIZED"
        self.pipeline = 1  # which feature pipeline the audio goes through
        self.pipelines_used: list[int] = []
        self.round_start = 0  # samples
        self.processed = 0
        self.words: list[tuple[str, float, float]] = []  # the open segment, times in recogniser seconds
        self.said = 0
        self.fail_final = False

    def SetWords(self, on: bool) -> None:  # noqa: N802 - Vosk's API
        assert on

    def AcceptWaveform(self, data: bytes) -> bool:  # noqa: N802
        if self.state == "FINALIZED":  # CleanUp: a new pipeline, the time origin past all audio so far
            self.round_start += self.processed
            self.processed = 0
            self.pipeline += 1
        self.state = "RUNNING"
        pcm = np.frombuffer(data, "<i2")
        t = (self.round_start + self.processed) / RATE
        if pcm.any():
            self.said += 1
            self.words.append((f"w{self.said}", t, t + len(pcm) / RATE))
        self.pipelines_used.append(self.pipeline)
        self.processed += len(pcm)
        return False

    def _take(self) -> str:
        words, self.words = self.words, []
        return json.dumps({"text": " ".join(w for w, _, _ in words),
                           "result": [{"word": w, "start": a, "end": b, "conf": 1.0} for w, a, b in words]})

    def PartialResult(self) -> str:  # noqa: N802
        if self.state != "RUNNING":
            return json.dumps({"partial": ""})
        return json.dumps({"partial": " ".join(w for w, _, _ in self.words)})

    def Result(self) -> str:  # noqa: N802
        if self.state != "RUNNING":
            return json.dumps({"text": ""})
        self.state = "ENDPOINT"
        return self._take()

    def FinalResult(self) -> str:  # noqa: N802
        if self.fail_final:
            raise RuntimeError("kaldi")
        if self.state != "RUNNING":
            return json.dumps({"text": ""})
        self.state = "FINALIZED"
        return self._take()


@pytest.fixture
def engine(monkeypatch) -> vosk_engine.VoskAsr:
    monkeypatch.setattr("vosk.KaldiRecognizer", Recogniser)
    monkeypatch.setattr(vosk_engine, "load_model", lambda path: object())
    Recogniser.made = 0
    return vosk_engine.VoskAsr("/models/ko", warm_recognisers=2)


def voice(seconds: float) -> np.ndarray:
    return np.full(int(seconds * RATE), 900, np.int16)


def test_the_next_utterance_reuses_the_recogniser_and_its_word_times_start_at_zero(engine):
    first = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    first.accept(voice(1.0))
    assert first.result().segments[0].start == 0.0
    second = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    second.accept(np.zeros(RATE // 2, np.int16))
    second.accept(voice(0.25))
    (word,) = second.result().segments
    assert Recogniser.made == 1  # the same warm recogniser
    assert (word.start, word.end) == (0.5, 0.75)  # not 1.51 s: Kaldi's clock ran on through the first one


def test_an_utterance_closed_by_a_checkpoint_leaves_no_pipeline_state_to_the_next(engine):
    first = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    first.accept(voice(0.5))
    assert first.checkpoint() == "w1"
    assert first.result().text == "w1"  # nothing after the checkpoint: no final pass
    second = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    second.accept(voice(0.25))
    rec = second._warm.rec  # type: ignore[union-attr]
    second.result()
    # Result() left the recogniser at ENDPOINT, where Vosk keeps the feature pipeline; the pool ran it to
    # FINALIZED, so the next caller's audio starts a new one (the adaptation to the last one is gone).
    assert rec.pipelines_used[0] == 1 and rec.pipelines_used[-2] == 2 and rec.pipelines_used[-1] == 3


def test_a_finished_utterance_takes_no_more_audio_and_its_recogniser_is_not_shared(engine):
    one = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    two = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    assert Recogniser.made == 2 and one._warm is not two._warm
    one.result()
    with pytest.raises(EngineError, match="already finished"):
        one.accept(voice(0.1))


def test_idle_recognisers_are_kept_up_to_the_limit(engine):
    utterances = [engine.open_utterance(RATE, None) for _ in range(3)]  # type: ignore[arg-type]
    for u in utterances:
        u.close()
    assert engine.pool.idle == 2  # the third is freed
    u.close()  # a second close hands nothing back twice
    assert engine.pool.idle == 2


def test_a_recogniser_that_cannot_be_reset_is_dropped(engine, caplog):
    u = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    u._warm.rec.fail_final = True  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="agent.engines.asr.vosk"):
        u.close()
    assert engine.pool.idle == 0
    assert [r.getMessage() for r in caplog.records] == ["vosk recogniser dropped: could not be reset"]


def test_the_partial_is_the_closed_segments_then_the_open_hypothesis(engine, caplog):
    u = engine.open_utterance(RATE, None)  # type: ignore[arg-type]
    assert u.partial() == ""
    u.accept(voice(0.2))
    u.checkpoint()
    u.accept(voice(0.2))
    u.accept(voice(0.2))
    assert u.partial() == "w1 w2 w3"

    def broken() -> str:
        raise RuntimeError("kaldi")

    u._warm.rec.PartialResult = broken  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="agent.engines.asr.vosk"):
        assert u.partial() == "w1"  # the closed words still count
    assert [r.getMessage() for r in caplog.records] == ["live partial failed: kaldi"]


def test_the_number_kept_warm_is_an_option_checked_at_start(monkeypatch):
    monkeypatch.setattr(vosk_engine, "load_model", lambda path: object())
    assert vosk_engine.create({"model_path": "/m", "warm_recognisers": 0}, "k").pool._keep == 0
    assert vosk_engine.create({"model_path": "/m"}, "k").pool._keep == vosk_engine.WARM_RECOGNISERS
    with pytest.raises(Exception, match="warm_recognisers"):
        vosk_engine.create({"model_path": "/m", "warm_recognisers": -1}, "k")
