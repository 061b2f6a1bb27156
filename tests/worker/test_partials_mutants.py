"""Live partial transcripts for streaming engines: the call's audio goes to the engine in 200 ms batches of whole
samples, each partial goes to FreeSWITCH as a non-final transcription of the current utterance, and a failing
stream only stops partials (logged once). A synchronous executor and a scripted stream keep it in-process."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
import pytest

from agent.engines.asr.base import AsrContext
from agent.engines.errors import EngineError
from agent.worker.partials import PartialRelay

CONTEXT = AsrContext(hotwords=("반품",), call_id="call-7")


class Inline(Executor):
    """Runs each job at once, in the caller's thread."""

    def __init__(self) -> None:
        self.jobs: list[str] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.jobs.append(getattr(fn, "__name__", repr(fn)))
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side, as a pool would
            future.set_exception(exc)
        return future


@dataclass
class Partial:
    transcript: str


class Stream:
    def __init__(self, partials: list[str], fail_feed: Exception | None = None):
        self._partials = partials
        self.fed: list[tuple[np.ndarray, int]] = []
        self.fail_feed = fail_feed

    def feed(self, pcm: np.ndarray, rate: int) -> None:
        if self.fail_feed is not None:
            raise self.fail_feed
        self.fed.append((pcm.copy(), rate))

    def partials(self):  # type: ignore[no-untyped-def]
        for text in self._partials:
            yield Partial(text)


class Engine:
    name = "streaming-fake"

    def __init__(self, stream: Stream | None = None, open_error: Exception | None = None):
        self.stream = stream or Stream([])
        self.open_error = open_error
        self.opened: list[AsrContext] = []
        self.ended: list[str] = []

    def open_stream(self, context: AsrContext) -> Stream:
        self.opened.append(context)
        if self.open_error is not None:
            raise self.open_error
        return self.stream

    def end_call(self, call_id: str) -> None:
        self.ended.append(call_id)


def relay(engine: object, rate: int = 8000, utterance: int = 3) -> tuple[PartialRelay, list[dict], Inline]:
    sent: list[dict] = []

    async def send(message: str) -> None:
        sent.append(json.loads(message))

    executor = Inline()
    return PartialRelay(engine, CONTEXT, rate, executor, send, lambda: utterance), sent, executor


def run(coro_fn) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        await coro_fn()
        for _ in range(5):  # let the relayed sends run
            await asyncio.sleep(0)

    asyncio.run(main())


def test_only_engines_with_a_stream_are_relayed():
    assert PartialRelay.supported(Engine())
    assert not PartialRelay.supported(object())
    assert not PartialRelay.supported(type("NotCallable", (), {"open_stream": "x"})())


def test_each_partial_goes_out_as_a_non_final_transcription_of_the_current_utterance():
    engine = Engine(Stream(["배송", "배송 조회"]))
    r, sent, executor = relay(engine, utterance=4)
    run(r.start)
    assert engine.opened == [CONTEXT]
    assert [m["type"] for m in sent] == ["transcription", "transcription"]
    assert sent[1]["data"] == {"event": "transcript", "utterance": 4, "final": False, "text": "배송 조회",
                               "source": "asr", "engine": "streaming-fake", "start": 0.0, "end": 0.0,
                               "eos_wait_ms": 0, "asr_ms": 0, "asr_wait_ms": 0, "segments": []}
    assert sent[0]["data"]["text"] == "배송"
    assert executor.jobs == ["open_stream", "_read"]  # the reader runs in the call's pool


def test_audio_goes_to_the_stream_in_200_ms_batches_of_whole_samples():
    engine = Engine()
    r, _, _ = relay(engine, rate=8000)  # 200 ms at 8 kHz: 1,600 samples, 3,200 bytes

    async def main() -> None:
        await r.start()
        pcm = np.arange(4000, dtype="<i2").tobytes()
        r.feed(pcm[:3199])
        assert engine.stream.fed == []  # not a whole batch yet
        r.feed(pcm[3199:3201])  # one byte past the batch: half a sample waits for the next message
        r.feed(b"")
        assert len(engine.stream.fed) == 1
        r.feed(pcm[3201:3202])  # the waiting half and this byte: one sample, far from a batch
        assert len(engine.stream.fed) == 1
        r.feed(pcm[3202:6401])

    run(main)
    fed = engine.stream.fed
    assert [(len(p), rate) for p, rate in fed] == [(1600, 8000), (1600, 8000)]
    assert np.array_equal(np.concatenate([p for p, _ in fed]), np.arange(3200, dtype=np.int16))


def test_an_exact_batch_leaves_nothing_behind():
    engine = Engine()
    r, _, _ = relay(engine, rate=8000)

    async def main() -> None:
        await r.start()
        r.feed(bytes(3200))
        r.feed(np.full(1600, 7, "<i2").tobytes()[:3199])  # one byte short of the next batch: nothing sent
        assert len(engine.stream.fed) == 1
        r.feed(b"\x00")

    run(main)
    assert [int(p[0]) for p, _ in engine.stream.fed] == [0, 7] and all(len(p) == 1600 for p, _ in engine.stream.fed)


@pytest.mark.parametrize("error", [EngineError("streaming-fake", "gone"), ValueError("bad rate")])
def test_a_stream_that_fails_stops_partials_with_one_log_line(caplog, error):
    engine = Engine(Stream([], fail_feed=error))
    r, _, executor = relay(engine)

    async def main() -> None:
        await r.start()
        r.feed(bytes(3200))
        r.feed(bytes(3200))  # after the failure nothing more is sent to the engine
        r.feed(bytes(3200))

    with caplog.at_level(logging.INFO, logger="agent.worker.partials"):
        run(main)
    assert executor.jobs.count("_feed") == 1
    assert [(rec.levelno, rec.getMessage()) for rec in caplog.records] == [
        (logging.WARNING, f"call call-7: live partials stopped: {error}")]


def test_a_stream_that_cannot_open_stops_partials_and_the_call_goes_on(caplog):
    engine = Engine(open_error=EngineError("streaming-fake", "no GPU"))
    r, sent, executor = relay(engine)

    async def main() -> None:
        await r.start()
        r.feed(bytes(6400))
        r.close()

    with caplog.at_level(logging.INFO, logger="agent.worker.partials"):
        run(main)
    assert sent == [] and executor.jobs == ["open_stream"] and engine.ended == []
    assert [rec.getMessage() for rec in caplog.records] == [
        "call call-7: live partials stopped: streaming-fake: no GPU"]


def test_before_start_audio_is_not_kept():
    engine = Engine()
    r, _, executor = relay(engine)
    r.feed(bytes(6400))
    assert executor.jobs == [] and engine.stream.fed == []


def test_closing_ends_the_engine_s_stream_for_this_call():
    engine = Engine()
    r, _, executor = relay(engine)
    run(r.start)
    r.close()
    assert engine.ended == ["call-7"] and executor.jobs[-1] == "end_call"


def test_closing_an_engine_without_end_call_does_nothing():
    class NoEnd(Engine):
        end_call = None  # type: ignore[assignment]

    class Bare:
        name = "bare"

        def __init__(self) -> None:
            self.stream = Stream([])

        def open_stream(self, context: AsrContext) -> Stream:
            return self.stream

    for engine in (NoEnd(), Bare()):
        r, _, executor = relay(engine)
        run(r.start)
        jobs = list(executor.jobs)
        r.close()
        assert executor.jobs == jobs
