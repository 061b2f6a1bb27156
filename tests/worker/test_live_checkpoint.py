"""The live decoder at a pause: the turn is read from the partial hypothesis; where it ends the turn, engines that
can close a segment (Vosk) close it there, so the final after that pause needs no further decoding."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.worker.live import LiveDecoder

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
CLIP = SPEECH_DIR / "ko/picovoice/leopard_test_ko.wav"  # "그는 디비전 이 피하면서 기흥 옆으로 걸어갔다"
HESITATE_AT = 2.01  # end of "하면서"


class FakeDecoder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def accept(self, pcm: np.ndarray) -> None:
        self.calls.append(("accept", int(pcm.size)))

    def partial(self) -> str:
        self.calls.append(("partial", 0))
        return "하면서 걸어갔"

    def checkpoint(self) -> str:
        self.calls.append(("checkpoint", 0))
        return "하면서 걸어갔 다"

    def result(self) -> AsrResult:
        self.calls.append(("result", 0))
        return AsrResult("하면서 걸어갔 다", "fake", (AsrSegment("다", 1.0, 1.2),))


class FakeEngine:
    name = "fake"

    def __init__(self, checkpoints: bool) -> None:
        self.live_checkpoints = checkpoints
        self.decoder = FakeDecoder()

    def open_utterance(self, rate: int, context: AsrContext) -> FakeDecoder:
        return self.decoder


def at_a_pause(engine: FakeEngine, *, close: bool, utterance: int = 1) -> tuple[str, AsrResult]:
    async def run() -> tuple[str, AsrResult]:
        with ThreadPoolExecutor(1) as pool:
            live = LiveDecoder(engine, 8000, AsrContext(), pool)
            live.begin(1, bytes(3200))
            text = await live.partial(1, pad_s=0.25)
            if close:
                live.close_segment(utterance)
            return text, await live.end(1)

    return asyncio.run(run())


def test_the_turn_is_read_from_the_partial_and_the_segment_closed_before_the_final():
    engine = FakeEngine(checkpoints=True)
    text, result = at_a_pause(engine, close=True)
    # The partial decides (closing biases toward "다"); the closed segment comes before the final result.
    assert text == "하면서 걸어갔"
    assert engine.decoder.calls == [("accept", 1600), ("accept", 2000), ("partial", 0), ("checkpoint", 0),
                                    ("result", 0)]
    # The pad fed before the read is taken out of the word times of the final result.
    assert result.segments[0].start == pytest.approx(0.75) and result.segments[0].end == pytest.approx(0.95)


def test_no_segment_is_closed_for_another_utterance_or_an_engine_without_checkpoints():
    engine = FakeEngine(checkpoints=True)
    at_a_pause(engine, close=True, utterance=2)
    assert ("checkpoint", 0) not in engine.decoder.calls
    engine = FakeEngine(checkpoints=False)
    text, _ = at_a_pause(engine, close=True)
    assert text == "하면서 걸어갔" and ("checkpoint", 0) not in engine.decoder.calls


@pytest.fixture(scope="module")
def vosk():
    from agent.engines.asr import vosk as vosk_engine

    return vosk_engine.create({}, "worker.asr.engines.vosk")


def speech() -> tuple[np.ndarray, int]:
    if not CLIP.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    import soundfile as sf

    audio, rate = sf.read(CLIP, dtype="int16")
    return audio, rate


@pytest.mark.speech
def test_vosk_checkpoint_closes_the_words_so_far_and_the_result_after_it_adds_nothing(vosk):
    audio, rate = speech()
    decoder = vosk.open_utterance(rate, AsrContext())
    decoder.accept(np.concatenate([audio, np.zeros(int(0.5 * rate), np.int16)]))
    text = decoder.checkpoint()
    assert text.endswith("다") and "하면서" in text
    assert decoder.checkpoint() == text  # a second read with no audio between adds nothing
    result = decoder.result()
    assert result.text == text and len(result.segments) == len(text.split())


@pytest.mark.speech
def test_vosk_decodes_on_after_a_checkpoint_on_the_same_clock(vosk):
    audio, rate = speech()
    cut = int(HESITATE_AT * rate)
    decoder = vosk.open_utterance(rate, AsrContext())
    decoder.accept(np.concatenate([audio[:cut], np.zeros(int(0.3 * rate), np.int16)]))
    assert decoder.checkpoint().endswith("하면서")
    decoder.accept(np.concatenate([np.zeros(int(0.3 * rate), np.int16), audio[cut:]]))
    result = decoder.result()
    words = {s.text: s for s in result.segments}
    # The same features and i-vector go on after the closed segment: the continuation reads as without it.
    assert result.text.endswith("기흥 옆으로 걸어갔 다")
    assert words["기흥"].start == pytest.approx(HESITATE_AT + 0.6, abs=0.1)


class SentenceDecoder(FakeDecoder):
    def partial(self) -> str:
        self.calls.append(("partial", 0))
        return "배송 조회해 주세요"


class SentenceEngine(FakeEngine):
    def __init__(self, checkpoints: bool) -> None:
        super().__init__(checkpoints)
        self.decoder = SentenceDecoder()

    def transcribe(self, pcm: np.ndarray, rate: int, context: AsrContext) -> AsrResult:
        return self.decoder.result()


@pytest.mark.speech
@pytest.mark.parametrize("checkpoints,veto", [(True, False), (False, False), (True, True)])
def test_the_worker_closes_the_segment_where_the_turn_ends_and_then_takes_the_final(checkpoints, veto,
                                                                                   monkeypatch, tmp_path):
    import dataclasses

    from test_turn_taking import WAIT_S, call, chunks, load, silence

    from agent.config import Config, VadConfig, WorkerConfig
    from agent.worker import session as worker_session
    from agent.worker.server import WorkerThread

    monkeypatch.setattr(worker_session, "SIGNAL_TIMEOUT_S", WAIT_S)
    engine = SentenceEngine(checkpoints)
    # With a Smart Turn veto the sentence-final partial does not end the turn: nothing is closed at those
    # checks (a closed segment's "다" would be read at the next one), and the fallback silence ends it.
    monkeypatch.setattr(worker_session, "_score", lambda pcm, rate: 0.5)
    vad = dataclasses.replace(VadConfig(), smart_turn=veto)
    cfg = Config(worker=WorkerConfig(listen=("127.0.0.1", 0), hotwords_dir=str(tmp_path), idle_timeout_s=300, vad=vad))
    w = WorkerThread(cfg, engine).start()
    try:
        messages = asyncio.run(call(w.port, chunks(np.concatenate([load(CLIP), silence(1.5)]))))
    finally:
        w.stop()
    final = messages[-1]["data"]
    assert final["text"] == "하면서 걸어갔 다"
    kinds = [k for k, _ in engine.decoder.calls if k != "accept"]
    if veto:
        assert final["eot"]["reason"] == "silence" and kinds == ["partial", "partial", "result"]
    else:
        assert final["eot"]["reason"] == "sentence_end"
        assert kinds == (["partial", "checkpoint", "result"] if checkpoints else ["partial", "result"])
