"""CallSession when something fails or falls behind: a failed or slow ASR pass, ASR behind the caller, a session
behind its socket, a peer that stops reading or is gone, a hangup with decoding still queued."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from agent.engines.errors import EngineError
from agent.worker import session as worker_session
from tests.worker.session_fakes import (
    CFG,
    FINAL,
    FRAME,
    TURN,
    Call,
    Closed,
    Conn,
    Engine,
    LiveEngine,
    Pool,
    StreamEngine,
    clock,
    finals,
    inject,
    kinds,
    named,
    of,
    quiet,
    run_call,
    vad,
    voice,
)

__all__ = ["clock", "vad"]  # the shared fixtures: every test here hears the scripted VAD


@pytest.mark.parametrize("fail, error, line", [
    (EngineError("scripted", "model gone", retryable=True), {"reason": "scripted: model gone", "retryable": True},
     (logging.WARNING, "call call-1: ASR failed: scripted: model gone")),
    (EngineError("scripted", "bad audio"), {"reason": "scripted: bad audio", "retryable": False},
     (logging.WARNING, "call call-1: ASR failed: scripted: bad audio")),
    (ValueError("bug"), {"reason": "engine error: ValueError", "retryable": False},
     (logging.ERROR, "call call-1: ASR engine raised"))])
def test_a_failed_asr_costs_one_utterance_not_the_call(clock, caplog, fail, error, line):
    engine = Engine(clock, fail=fail)

    async def main() -> Call:
        async with Call(engine, cfg=replace(CFG, speculative_ms=0)) as c:
            c.audio(TURN + TURN)
            await c.finals(2)
        return c

    with caplog.at_level(logging.WARNING, logger="agent.worker.session"):
        c = run_call(main)
    assert named(c.events, "asr_error") == [{"type": "json", "event": "asr_error", "utterance": n, **error}
                                            for n in (1, 2)]
    assert finals(c.events) == [] and (c.stats.asr_errors, c.stats.asr_calls, c.stats.asr_timeouts) == (2, 2, 0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [line, line]


def test_a_pass_that_never_returns_falls_back_to_silence_then_times_out(clock, caplog, monkeypatch):
    monkeypatch.setattr(worker_session, "SIGNAL_TIMEOUT_S", 0.01)

    async def main() -> Call:
        async with Call(Engine(clock), pool=Pool("transcribe"), asr_timeout_s=0.1) as c:
            c.audio(TURN + TURN)
            await c.finals(2)
        return c

    with caplog.at_level(logging.DEBUG, logger="agent.worker.session"):
        c = run_call(main)
    assert "turn_preview" not in kinds(c.events)  # no transcript at the pause: the turn ended on silence
    assert named(c.events, "asr_error") == [{"type": "json", "event": "asr_error", "utterance": n,
                                             "reason": "timeout after 0.1 s", "retryable": True} for n in (1, 2)]
    assert (c.stats.asr_timeouts, c.stats.asr_errors, c.stats.turns_silence, c.stats.speculative_used) == (2, 0, 2, 2)
    assert c.stats.transcripts_late == 4  # both checks of both turns
    assert sorted(r.getMessage() for r in caplog.records) == [
        "call call-1: ASR timed out after 0.1 s"] * 2 + ["call call-1: no transcript at the pause: TimeoutError()"] * 4


@pytest.mark.parametrize("max_pending, turns, sent, line", [
    (None, 7, [1, 4, 5, 6, 7], ["call call-1: ASR 4 utterances behind; utterance 2 dropped",
                               "call call-1: ASR 4 utterances behind; utterance 3 dropped"]),
    (0, 3, [1, 3], ["call call-1: ASR 1 utterances behind; utterance 2 dropped"])])
def test_asr_falling_behind_drops_the_oldest_waiting_utterance(clock, caplog, max_pending, turns, sent, line):
    pool = Pool("transcribe")
    kw = {} if max_pending is None else {"max_pending_utterances": max_pending}

    async def main() -> Call:
        async with Call(Engine(clock), cfg=replace(CFG, speculative_ms=0), pool=pool, **kw) as c:
            c.audio(TURN * turns)
            await c.until(lambda: len(named(c.events, "speech_ended")) == turns)
            pool.release()
            await c.finals(len(sent))
        return c

    with caplog.at_level(logging.WARNING, logger="agent.worker.session"):
        c = run_call(main)
    assert [f["utterance"] for f in finals(c.events)] == sent
    assert (c.stats.utterances, c.stats.utterances_dropped, c.stats.asr_calls) == (turns, len(line), len(sent))
    assert [r.getMessage() for r in caplog.records] == line


def test_a_flush_ends_the_utterance_and_a_pass_from_an_earlier_pause_is_not_its_final(clock):
    engine = Engine(clock, "배송", FINAL, "배송", FINAL)

    async def main() -> Call:
        async with Call(engine) as c:
            for _ in range(2):
                c.audio(quiet(4) + voice(15) + quiet(11) + voice(5))
                c.send(b"")  # mod_audio_fork's graceful shutdown: flush the finals
            await c.finals(2)
        return c

    c = run_call(main)
    assert kinds(of(c.events, 1)) == ["speech_onset", "speech_started", "speech_continuing", "speech_paused",
                                      "speech_ended", "final"]
    final = finals(c.events)[0]
    assert (final["text"], final["end"], final["eos_wait_ms"]) == (FINAL, 0.7, 0)
    assert final["eot"] == {"reason": "forced", "silence_ms": 0, "sentence_end": None, "smart_turn": None}
    assert [len(pcm) for pcm, _, _ in engine.calls] == [27 * 160, 33 * 160] * 2
    assert [f["text"] for f in finals(c.events)] == [FINAL, FINAL]
    assert (c.stats.speculative_wasted, c.stats.speculative_used, c.stats.turns_forced) == (2, 0, 2)


def test_a_session_that_falls_behind_drops_the_oldest_messages_read(clock, monkeypatch):
    monkeypatch.setattr(worker_session, "SIGNAL_TIMEOUT_S", 30.0)
    pool = Pool("transcribe")

    async def main() -> Call:
        async with Call(Engine(clock), pool=pool) as c:
            c.audio(TURN[:31 * FRAME])  # up to the turn check, where processing waits for the pass
            await c.until(lambda: c.stats.frames == 31)
            c.send(*[b"\0\0"] * (worker_session.INTAKE_MAX + 100))
            await c.until(lambda: c.conn.incoming.empty())
            assert c.stats.intake_dropped == 100
            pool.release()
            await c.finals()
            await c.until(lambda: c.stats.messages == 31 + worker_session.INTAKE_MAX)
        return c

    c = run_call(main)
    assert finals(c.events)[0]["text"] == FINAL and c.stats.intake_dropped == 100


def test_a_peer_that_stops_reading_is_closed_and_nothing_more_is_sent(clock, monkeypatch, caplog):
    monkeypatch.setattr(worker_session, "SEND_TIMEOUT_S", 0.01)

    async def main() -> Call:
        async with Call(Engine(clock), conn=Conn(stuck=True)) as c:
            c.send(inject(5))  # one error counted before
            c.audio(TURN)
            await c.until(lambda: c.stats.asr_calls == 1 and c.stats.frames == 59)
        return c

    with caplog.at_level(logging.DEBUG, logger="agent.worker.session"):
        c = run_call(main)
    assert (c.conn.closed, c.conn.sent, c.stats.errors) == ((1011, "send timeout"), [], 2)
    lines = [r.getMessage() for r in caplog.records][1:]
    assert lines[0] == "call call-1: send timed out; closing" and len(lines) > 1
    assert set(lines[1:]) == {"call call-1: connection closing; message dropped"}


def test_a_hangup_drops_the_decoding_still_queued_for_the_call(clock):
    pool = Pool("_open")  # the decoder never opens: every job of the call waits behind it

    async def main() -> Call:
        async with Call(LiveEngine(clock), pool=pool) as c:
            c.audio(TURN[:25 * FRAME])
            await c.until(lambda: "speech_started" in kinds(c.events))
        for _ in range(5):
            await asyncio.sleep(0)
        [(_, _, opening)] = pool.held
        assert opening.cancelled()  # before the end of the loop, which cancels whatever is left
        return c

    run_call(main)


def test_a_send_after_the_hangup_ends_the_session_and_leaves_no_task_behind(clock):
    engine = StreamEngine(clock)

    async def main() -> Call:
        c = Call(engine, conn=Closed())
        c.audio(TURN)
        async with c:
            await c.task  # ends on its own at the first send
        assert c.left == [asyncio.current_task().get_name()]  # type: ignore[union-attr]
        return c

    c = run_call(main)
    assert c.conn.sent == [] and engine.ended == ["call-1"]


@pytest.mark.parametrize("busy", ["asr", "heartbeat"])
def test_a_hangup_waits_for_the_call_s_tasks_even_in_the_middle_of_a_pass_or_a_send(clock, monkeypatch, busy):
    monkeypatch.setattr(worker_session, "HEARTBEAT_S", 0.001 if busy == "heartbeat" else 60)
    pool = Pool("transcribe")  # an ASR pass that is still running at the hangup

    async def main() -> None:
        async with Call(Engine(clock), cfg=replace(CFG, speculative_ms=0), pool=pool,
                        conn=Conn(stuck=busy == "heartbeat")) as c:
            if busy == "asr":
                c.audio(TURN)
                await c.until(lambda: len(pool.held) == 1)
            else:
                await c.until(lambda: c.conn.attempts == 1)  # a heartbeat waits on a peer that does not read
            await c.hangup()
            assert c.left == [t.get_name() for t in [asyncio.current_task()] if t is not None]

    run_call(main)
