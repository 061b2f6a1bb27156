"""The live decoder at a pause: engines that can close a segment (Vosk) are read from the closed segment, which
has the last syllables the partial hypothesis still lacks, and a turn that ends at that pause needs no final pass."""

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


def at_a_pause(engine: FakeEngine) -> tuple[str, AsrResult]:
    async def run() -> tuple[str, AsrResult]:
        with ThreadPoolExecutor(1) as pool:
            live = LiveDecoder(engine, 8000, AsrContext(), pool)
            live.begin(1, bytes(3200))
            text = await live.partial(1, pad_s=0.25)
            return text, await live.end(1)

    return asyncio.run(run())


def test_an_engine_that_closes_segments_is_read_from_the_closed_segment_after_the_pad():
    engine = FakeEngine(checkpoints=True)
    text, result = at_a_pause(engine)
    assert text == "하면서 걸어갔 다"
    assert engine.decoder.calls == [("accept", 1600), ("accept", 2000), ("checkpoint", 0), ("result", 0)]
    # The pad fed before the read is taken out of the word times of the final result.
    assert result.segments[0].start == pytest.approx(0.75) and result.segments[0].end == pytest.approx(0.95)


def test_other_engines_are_read_from_their_partial_hypothesis():
    engine = FakeEngine(checkpoints=False)
    text, _ = at_a_pause(engine)
    assert text == "하면서 걸어갔"
    assert ("partial", 0) in engine.decoder.calls and ("checkpoint", 0) not in engine.decoder.calls


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
