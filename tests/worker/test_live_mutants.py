"""Live decoding while the caller speaks, with a scripted decoder and a pool that runs each job at once: which
audio reaches the decoder and in what batches, the partial read at a pause (after a pad of silence), word times
with the pads taken out, and what a failed or abandoned decoder gives."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, Future

import numpy as np
import pytest

from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.engines.errors import EngineError
from agent.worker.live import LiveDecoder, partial_shift

RATE = 8000
BATCH = 3200  # 200 ms at 8 kHz
CONTEXT = AsrContext(hotwords=("반품",), call_id="call-5")


class Inline(Executor):
    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side, as a pool would
            future.set_exception(exc)
        return future


class Decoder:
    def __init__(self, segments: tuple[AsrSegment, ...] = ()):
        self.accepted: list[np.ndarray] = []
        self.segments = segments

    def accept(self, pcm: np.ndarray) -> None:
        self.accepted.append(pcm.copy())

    def partial(self) -> str:
        return f"partial after {sum(len(a) for a in self.accepted)} samples"

    def result(self) -> AsrResult:
        return AsrResult("배송 조회", "live-fake", self.segments)

    def close(self) -> None:
        self.accepted.append(np.array([-1], np.int16))  # marks the hand-back


class Engine:
    name = "live-fake"

    def __init__(self, *, checkpoints: bool = False, fail_open: bool = False, segments=()):  # type: ignore[no-untyped-def]
        self.live_checkpoints = checkpoints
        self.fail_open = fail_open
        self.segments = segments
        self.opened: list[tuple[int, AsrContext]] = []
        self.decoders: list[Decoder] = []

    def open_utterance(self, rate: int, context: AsrContext) -> Decoder:
        self.opened.append((rate, context))
        if self.fail_open:
            raise EngineError(self.name, "no model")
        self.decoders.append(Decoder(self.segments))
        return self.decoders[-1]


def samples(n: int, start: int = 0) -> bytes:
    return np.arange(start, start + n, dtype="<i2").tobytes()


def live(engine: Engine) -> LiveDecoder:
    return LiveDecoder(engine, RATE, CONTEXT, Inline())


def test_only_engines_that_open_utterances_decode_live():
    assert LiveDecoder.supported(Engine()) and not LiveDecoder.supported(object())
    assert not LiveDecoder.supported(type("E", (), {"open_utterance": 1})())


def test_the_decoder_gets_the_confirmed_audio_then_200_ms_batches_and_the_rest_at_the_end():
    engine = Engine()

    async def main() -> AsrResult:
        d = live(engine)
        d.feed(samples(100))  # before any utterance: not kept
        d.begin(1, samples(1000))  # the audio up to the confirmation: under one batch
        d.feed(samples(599, 1000))
        d.feed(samples(1, 1599))  # 1,600 samples: one batch
        d.feed(samples(300, 1600))
        future = d.end(1)
        assert future is not None
        return await future

    result = asyncio.run(main())
    assert engine.opened == [(RATE, CONTEXT)]
    sizes = [len(a) for a in engine.decoders[0].accepted]
    assert sizes == [1600, 300]
    assert np.array_equal(np.concatenate(engine.decoders[0].accepted), np.arange(1900, dtype=np.int16))
    assert result == AsrResult("배송 조회", "live-fake", ())


def test_another_utterance_or_none_has_no_live_result():
    async def main() -> tuple[object, object, object]:
        d = live(Engine())
        before = d.end(1)
        d.begin(2, b"")
        return before, d.end(1), d.partial(1)

    assert asyncio.run(main()) == (None, None, None)


def test_the_partial_at_a_pause_is_read_after_a_pad_of_silence():
    engine = Engine()

    async def main() -> str:
        d = live(engine)
        d.begin(1, samples(1000))
        future = d.partial(1)
        assert future is not None
        return await future

    text = asyncio.run(main())
    pad = engine.decoders[0].accepted[-1]
    assert len(pad) == int(0.25 * RATE) and not pad.any()
    assert text == f"partial after {1000 + len(pad)} samples"


def test_without_a_pad_only_the_audio_is_read():
    engine = Engine()

    async def main() -> str:
        d = live(engine)
        d.begin(1, samples(1000))
        return await d.partial(1, pad_s=0)  # type: ignore[misc]

    assert asyncio.run(main()) == "partial after 1000 samples"
    assert [len(a) for a in engine.decoders[0].accepted] == [1000]


def test_word_times_after_a_pad_are_moved_back_by_it():
    segments = (AsrSegment("배송", 0.2, 0.9), AsrSegment("조회", 1.3, 1.6))
    engine = Engine(segments=segments)

    async def main() -> AsrResult:
        d = live(engine)
        d.begin(1, samples(8000))  # 1 s of audio, then a pause: 0.25 s of pad at decoder second 1.0
        await d.partial(1)  # type: ignore[misc]
        d.feed(samples(4000))
        return await d.end(1)  # type: ignore[misc]

    result = asyncio.run(main())
    assert [(s.text, round(s.start, 6), round(s.end, 6)) for s in result.segments] == [
        ("배송", 0.2, 0.9), ("조회", 1.05, 1.35)]


def test_partial_shift_takes_each_pad_out_and_maps_a_time_inside_a_pad_to_its_start():
    shift = partial_shift(((1.0, 0.25), (2.0, 0.5)))
    assert [round(shift(t), 6) for t in (0.5, 1.0, 1.1, 1.25, 1.5, 2.0, 2.2, 2.5, 3.0)] == [
        0.5, 1.0, 1.0, 1.0, 1.25, 1.75, 1.75, 1.75, 2.25]


def test_a_decoder_that_could_not_open_reports_a_retryable_error_and_reads_as_empty():
    engine = Engine(fail_open=True)

    async def main() -> tuple[str, BaseException]:
        d = live(engine)
        d.begin(1, samples(4000))
        partial = await d.partial(1)  # type: ignore[misc]
        with pytest.raises(EngineError) as info:
            await d.end(1)  # type: ignore[misc]
        return partial, info.value

    partial, error = asyncio.run(main())
    assert partial == ""
    assert str(error) == "live-fake: live decoder could not start" and error.retryable


def test_an_abandoned_utterance_is_not_decoded_further():
    engine = Engine()

    async def main() -> object:
        d = live(engine)
        d.begin(1, samples(1000))
        d.abandon()
        d.feed(samples(4000))
        end = d.end(1)
        for _ in range(10):  # the job chain runs out
            await asyncio.sleep(0)
        return end

    assert asyncio.run(main()) is None
    accepted = engine.decoders[0].accepted
    assert all(len(a) < 1600 for a in accepted)
    assert accepted[-1].tolist() == [-1]  # closed after its queued audio: a pooled recogniser goes back


def _read_partial(decoder: object) -> str:
    class E(Engine):
        def open_utterance(self, rate: int, context: AsrContext):  # type: ignore[no-untyped-def]
            return decoder

    async def main() -> str:
        d = live(E())
        d.begin(1, b"")
        return await d.partial(1, pad_s=0)  # type: ignore[misc]

    return asyncio.run(main())


class NoPartial:
    """An engine's utterance decoder that offers no partial()."""

    def accept(self, pcm: np.ndarray) -> None:
        pass

    def result(self) -> AsrResult:
        return AsrResult("", "x", ())


class WithPartial(NoPartial):
    def partial(self) -> str:
        return "그는 디비전 이 피하면서"


def test_the_partial_is_the_decoder_s_own_or_none_at_all():
    assert _read_partial(WithPartial()) == "그는 디비전 이 피하면서"
    assert _read_partial(NoPartial()) == ""


class Counting(Inline):
    def __init__(self) -> None:
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


def test_decoding_runs_in_the_call_s_pool_and_stops_with_the_utterance():
    engine, pool = Engine(), Counting()

    async def main() -> None:
        d = LiveDecoder(engine, RATE, CONTEXT, pool)
        d.begin(1, samples(1600))
        await d.end(1)  # type: ignore[misc]
        d.feed(samples(3200))  # after the end: no utterance is being decoded
        for _ in range(10):  # any job queued by that feed would have reached the pool by now
            await asyncio.sleep(0)

    asyncio.run(main())
    assert pool.calls == 3  # open, the batch, the result
    assert [len(a) for a in engine.decoders[0].accepted] == [1600]


def test_word_times_after_two_pauses_fed_in_several_messages():
    segments = (AsrSegment("a", 0.9, 1.0), AsrSegment("b", 1.6, 1.7), AsrSegment("c", 2.4, 2.5))
    engine = Engine(segments=segments)

    async def main() -> AsrResult:
        d = live(engine)
        d.begin(1, samples(2000))
        d.feed(samples(2000))  # 0.5 s in two messages, then a pause: pad at 0.5 s
        await d.partial(1, pad_s=0.5)  # type: ignore[misc]
        d.feed(samples(4000))  # 0.5 s more, another pause: pad at decoder second 1.5
        await d.partial(1, pad_s=0.5)  # type: ignore[misc]
        return await d.end(1)  # type: ignore[misc]

    result = asyncio.run(main())
    assert [(s.text, round(s.start, 6), round(s.end, 6)) for s in result.segments] == [
        ("a", 0.5, 0.5), ("b", 1.0, 1.0), ("c", 1.4, 1.5)]


def test_the_pad_is_16_bit_silence_like_the_audio():
    engine = Engine()

    async def main() -> None:
        d = live(engine)
        d.begin(1, samples(100))
        await d.partial(1)  # type: ignore[misc]

    asyncio.run(main())
    assert [a.dtype for a in engine.decoders[0].accepted] == [np.dtype(np.int16)] * 2


class Plain:
    """An engine with neither a name nor checkpoints, and decoders with neither partial() nor Kaldi state."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def open_utterance(self, rate: int, context: AsrContext) -> object:
        if self.fail:
            raise RuntimeError("no model")
        return type("Bare", (), {"accept": lambda _self, _pcm: None,
                                 "result": lambda _self: AsrResult("네", "plain", ())})()


def test_an_engine_without_extras_reads_empty_partials_and_names_itself_asr_in_errors():
    async def main() -> tuple[str, AsrResult, BaseException]:
        d = LiveDecoder(Plain(), RATE, CONTEXT, Inline())
        d.begin(1, samples(100))
        text = await d.partial(1)  # type: ignore[misc]
        result = await d.end(1)  # type: ignore[misc]
        failing = LiveDecoder(Plain(fail=True), RATE, CONTEXT, Inline())
        failing.begin(1, b"")
        with pytest.raises(EngineError) as info:
            await failing.end(1)  # type: ignore[misc]
        return text, result, info.value

    text, result, error = asyncio.run(main())
    assert text == "" and result.text == "네"
    assert str(error) == "asr: live decoder could not start"


class Closing(Decoder):
    def checkpoint(self) -> str:
        self.accepted.append(np.array([-2], np.int16))  # marks the close, in the order of the jobs
        return "홍콩 의 어딨 나"


def test_the_closed_reading_comes_after_the_audio_queued_and_only_for_the_utterance_decoded():
    engine = Engine(checkpoints=True)
    engine.open_utterance = lambda rate, context: engine.decoders.append(Closing()) or engine.decoders[-1]  # type: ignore[method-assign]

    async def main() -> tuple[object, ...]:
        d = live(engine)
        before = d.closed_reading(1)  # nothing being decoded yet
        d.begin(1, samples(1000))
        other = d.closed_reading(2)
        text = await d.closed_reading(1)  # type: ignore[misc]
        return before, other, text

    before, other, text = asyncio.run(main())
    assert (before, other, text) == (None, None, "홍콩 의 어딨 나")
    assert [a.tolist() for a in engine.decoders[0].accepted][-1] == [-2]  # after the 1000 samples, once
    assert sum(len(a) for a in engine.decoders[0].accepted) == 1001
    assert live(Engine(checkpoints=False)).closed_reading(1) is None


def test_after_the_hangup_audio_is_no_longer_decoded():
    engine = Engine()

    async def main() -> None:
        d = live(engine)
        d.begin(1, samples(2000))  # more than one 200 ms batch: decoded at once
        for _ in range(10):
            await asyncio.sleep(0)
        d.close()
        d.feed(samples(4000))  # frames still in the intake when FreeSWITCH hung up
        assert d.end(1) is None and d.partial(1) is None
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert sum(len(a) for a in engine.decoders[0].accepted) == 2000
