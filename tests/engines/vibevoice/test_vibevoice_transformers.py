"""vibevoice-transformers with a tiny random VibeVoice-ASR checkpoint (vv_tiny.py): real processor, real
model code, real generate(); the transcript content is random, its shape is real. Plus the micro-batcher."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the vibevoice-transformers engine needs torch (Makefile installs it)")
pytest.importorskip("transformers.models.vibevoice_asr", reason="needs transformers>=5.3")

from vv_tiny import write_tiny_checkpoint  # noqa: E402

from agent.engines.asr.base import AsrContext, AsrSegment  # noqa: E402
from agent.engines.asr.vibevoice_transformers import (  # noqa: E402
    NAME,
    MicroBatcher,
    VibeVoiceTransformersAsr,
    build_inputs,
    create,
    parse_options,
)
from agent.engines.errors import EngineError, EngineUnavailable  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("vibevoice-asr-tiny"))


def speech_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 3000).astype(np.int16)


def test_inputs_carry_duration_hotwords_and_one_audio_token_per_3200_samples(checkpoint: Path) -> None:
    from transformers import VibeVoiceAsrProcessor

    proc = VibeVoiceAsrProcessor.from_pretrained(str(checkpoint))
    audios = [np.zeros(24000, np.float32), np.zeros(int(24000 * 2.5), np.float32)]
    inputs = build_inputs(proc, audios, ["무료배송, 쿠폰", ""])
    first = proc.decode(inputs["input_ids"][0], skip_special_tokens=False)
    second = proc.decode(inputs["input_ids"][1], skip_special_tokens=False)
    assert "This is a 1.00 seconds audio, with extra info: 무료배송, 쿠폰\n\nPlease transcribe it with these keys: " \
           "Start time, End time, Speaker ID, Content<|im_end|>" in first
    assert "This is a 2.50 seconds audio, please transcribe it with these keys:" in second
    assert first.count("<|box_start|>") == math.ceil(24000 / 3200)
    assert second.count("<|box_start|>") == math.ceil(60000 / 3200)
    assert inputs["input_values"].shape[-1] == 19 * 3200  # the longest, padded to a multiple of 3200
    # Left padding: the shorter prompt is padded in front, so both answers start in the same column.
    assert inputs["attention_mask"][:, 0].min() == 0 and bool(inputs["attention_mask"][:, -1].all())


def test_two_concurrent_calls_share_one_generate(checkpoint: Path) -> None:
    engine = create({"model_path": str(checkpoint), "device": "cpu", "gather_ms": 400, "max_new_tokens": 24},
                    "worker.asr.engines.vibevoice-transformers")
    calls = [(speech_like(1.0, 8000, 1), 8000, AsrContext(hotwords=("적금",), call_id="a")),
             (speech_like(1.6, 16000, 2), 16000, AsrContext(call_id="b"))]
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda c: engine.transcribe(*c), calls))
    finally:
        engine.close()
    assert engine.batch_sizes == {2: 1}
    for result, duration in zip(results, (1.0, 1.6), strict=True):
        assert result.engine == NAME
        assert isinstance(result.text, str)
        for seg in result.segments:
            assert isinstance(seg, AsrSegment)
            assert 0.0 <= seg.start <= seg.end <= duration + 1e-6


def test_slow_model_gives_a_retryable_timeout(checkpoint: Path) -> None:
    from transformers import VibeVoiceAsrProcessor

    class SlowModel:
        device, dtype = torch.device("cpu"), torch.float32

        def generate(self, input_ids, **_):
            time.sleep(0.8)
            return input_ids

    opts = parse_options({"model_path": str(checkpoint), "device": "cpu", "timeout_s": 0.5}, "k")
    engine = VibeVoiceTransformersAsr(SlowModel(), VibeVoiceAsrProcessor.from_pretrained(str(checkpoint)), opts)
    try:
        with pytest.raises(EngineError) as info:
            engine.transcribe(speech_like(0.5, 8000, 3), 8000, AsrContext())
        assert info.value.retryable
    finally:
        engine.close()


def test_unavailable_without_model_files_or_gpu(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(EngineUnavailable, match="config.json missing"):
        create({"model_path": str(tmp_path), "device": "cpu"}, "k")
    if not torch.cuda.is_available():
        with pytest.raises(EngineUnavailable, match="no CUDA"):
            create({"model_path": str(checkpoint)}, "k")


def test_batcher_bounds_batches_and_answers_everyone() -> None:
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(items)
        time.sleep(0.05)
        return [i * 10 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=3, gather_s=0.1)
    futures = [batcher.submit(i) for i in range(7)]
    assert [f.result(timeout=5) for f in futures] == [i * 10 for i in range(7)]
    batcher.close()
    assert all(len(b) <= 3 for b in seen)
    assert sorted(i for b in seen for i in b) == list(range(7))
    assert seen[0] == [0, 1, 2]  # FIFO


def test_batcher_failure_reaches_every_caller_in_the_batch() -> None:
    def run(items: list[int]) -> list[int]:
        raise RuntimeError("CUDA out of memory")

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=4, gather_s=0.1)
    futures = [batcher.submit(i) for i in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="out of memory"):
            f.result(timeout=5)
    batcher.close()


def test_batcher_skips_cancelled_and_fails_queued_on_close() -> None:
    gate = threading.Event()
    ran: list[int] = []

    def run(items: list[int]) -> list[int]:
        gate.wait(5)
        ran.extend(items)
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=1, gather_s=0.0)
    first = batcher.submit(1)
    time.sleep(0.1)  # the thread now holds item 1
    cancelled, queued = batcher.submit(2), batcher.submit(3)
    assert cancelled.cancel()
    with pytest.raises(FutureTimeout):
        queued.result(timeout=0.05)
    threading.Timer(0.1, gate.set).start()
    batcher.close()
    assert first.result(timeout=1) == 1
    assert 2 not in ran
    assert queued.done()
    if 3 not in ran:  # close() raced the loop: a queued caller is told, never left hanging
        with pytest.raises(EngineError):
            queued.result(timeout=1)
