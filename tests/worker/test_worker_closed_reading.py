"""The closed-segment reading at the audio model's check (worker session, in process, stand-ins from
session_fakes): where the transcript so far shows no sentence ending, the live decoder's segment is closed and
read; a sentence ending on the same last word ends the turn there, anything else waits for the fallback."""

from __future__ import annotations

import logging
from dataclasses import replace

from agent.engines.asr.base import AsrContext
from agent.media import smart_turn
from agent.worker import session as worker_session
from tests.worker.session_fakes import (
    CFG,
    TURN,
    Call,
    Decoder,
    LiveEngine,
    Pool,
    Scorer,
    clock,  # noqa: F401 - fixture
    finals,
    named,
    quiet,
    run_call,
    vad,  # noqa: F401 - fixture
    voice,
)

MISREAD = "내게 하는 홍콩 의 어린 나"  # the partial: a particle after a misread stem
CLOSED = "내게 하는 한컴 이 어딨 나"  # the closed segment: the question ending the caller said


class ReadingDecoder(Decoder):
    def partial(self) -> str:
        return MISREAD

    def checkpoint(self) -> str:
        self.checkpoints += 1
        closed = self.engine.closed  # type: ignore[attr-defined]
        if isinstance(closed, Exception):
            raise closed
        return closed


class ReadingEngine(LiveEngine):
    def __init__(self, on_clock, closed: str | Exception) -> None:  # type: ignore[no-untyped-def]
        super().__init__(on_clock)
        self.closed = closed

    def open_utterance(self, rate: int, context: AsrContext) -> Decoder:
        self.decoders = [*getattr(self, "decoders", []), ReadingDecoder(self)]
        return self.decoders[-1]


def one_turn(engine: ReadingEngine, cfg=CFG) -> Call:  # type: ignore[no-untyped-def]
    async def main() -> Call:
        async with Call(engine, cfg=cfg, pool=Pool()) as c:
            c.audio(TURN)
            await c.finals()
        return c

    return run_call(main)


def test_a_closed_reading_on_the_same_last_word_ends_the_turn_at_the_audio_model_check(clock):  # noqa: F811
    engine = ReadingEngine(clock, CLOSED)
    c = one_turn(engine)
    (final,) = finals(c.events)
    assert final["eot"] == {"reason": "sentence_end", "silence_ms": 400, "sentence_end": False,
                            "smart_turn": None, "closed": True}
    assert final["eos_wait_ms"] == 400  # not the 600 ms fallback
    assert named(c.events, "turn_preview") == []  # the partial never looked final: nothing was prepared
    assert c.stats.turns_sentence_end == 1 and c.stats.turns_silence == 0
    # Closed once at the 400 ms check (not at 240 ms), once more as the turn ended (nothing left to close).
    assert engine.decoders[0].checkpoints == 2


def test_a_closed_reading_that_disagrees_waits_for_the_fallback(clock):  # noqa: F811
    engine = ReadingEngine(clock, "내게 하는 홍콩 의 어린 나 다")
    c = one_turn(engine)
    (final,) = finals(c.events)
    assert (final["eot"]["reason"], final["eos_wait_ms"]) == ("silence", 600)
    assert "closed" not in final["eot"]
    (ended,) = named(c.events, "speech_ended")
    assert "text" not in ended  # no preview went out: the words stay with the final


def test_with_the_closed_check_off_the_segment_is_not_closed_at_a_pause(clock):  # noqa: F811
    engine = ReadingEngine(clock, CLOSED)
    (final,) = finals(one_turn(engine, replace(CFG, closed_check=False)).events)
    assert final["eot"]["reason"] == "silence"
    assert engine.decoders[0].checkpoints == 0  # the fallback ends the turn on a frame, with no check to close


def test_a_caller_who_goes_on_after_the_closed_reading_is_one_turn(clock):  # noqa: F811
    engine = ReadingEngine(clock, "내게 하는 홍콩 의 어린 나 는")  # no ending: the caller goes on at 460 ms
    audio = quiet(4) + voice(15) + quiet(23) + voice(10) + quiet(40)

    async def main() -> Call:
        async with Call(engine, pool=Pool()) as c:
            c.audio(audio)
            await c.finals()
        return c

    c = run_call(main)
    (final,) = finals(c.events)
    assert len(named(c.events, "speech_started")) == 1 and final["end"] == 1.04  # voice again 0.84–1.04 s
    assert engine.decoders[0].checkpoints == 2  # read at each pause's 400 ms check; the fallback ended it


def test_the_audio_model_still_vetoes_or_allows_an_end_on_the_closed_reading(clock, monkeypatch):  # noqa: F811
    for score, reason in ((0.9, "sentence_end"), (0.3, "silence")):
        monkeypatch.setattr(smart_turn, "shared", lambda s=score: Scorer(s))
        engine = ReadingEngine(clock, CLOSED)
        (final,) = finals(one_turn(engine, replace(CFG, smart_turn=True, smart_turn_veto=0.5)).events)
        assert (final["eot"]["reason"], final["eot"]["smart_turn"]) == (reason, score)
        assert final["eot"].get("closed", False) is (reason == "sentence_end")


def test_a_closed_reading_that_fails_costs_only_the_fast_path(clock, caplog):  # noqa: F811
    engine = ReadingEngine(clock, RuntimeError("kaldi"))
    with caplog.at_level(logging.DEBUG, logger="agent.worker.session"):
        c = one_turn(engine)
    (final,) = finals(c.events)
    assert final["eot"]["reason"] == "silence" and c.stats.transcripts_late == 1
    assert [r.getMessage() for r in caplog.records] == [
        "call call-1: no closed segment at the pause: RuntimeError('kaldi')"]


def test_a_closed_reading_that_hangs_is_not_waited_for(clock, monkeypatch):  # noqa: F811
    monkeypatch.setattr(worker_session, "SIGNAL_TIMEOUT_S", 0.05)
    engine = ReadingEngine(clock, CLOSED)

    async def main() -> Call:
        async with Call(engine, pool=Pool("_checkpoint")) as c:
            c.audio(TURN)
            try:
                await c.until(lambda: c.stats.transcripts_late == 1)  # the check went on without it
            finally:
                c.pool.release()  # a session still waiting on it could not hang up
            await c.finals()
        return c

    c = run_call(main)
    assert finals(c.events)[0]["eot"]["reason"] == "silence"
