"""CallSession, one forked call on the worker, in-process: binary audio and text frames in, the JSON frames that
FreeSWITCH turns into mod_audio_fork events out (their names, utterance numbers, times and order). The stand-ins
are in session_fakes; failures and limits are in test_worker_session_failures_mutants."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from agent.media import smart_turn
from agent.worker import session as worker_session
from tests.worker.session_fakes import (
    CFG,
    CONTEXT,
    FINAL,
    FRAME,
    OPEN,
    RATE,
    TURN,
    Call,
    Engine,
    LiveEngine,
    Pool,
    Scorer,
    StreamEngine,
    clock,
    finals,
    inject,
    kinds,
    named,
    of,
    quiet,
    run,
    run_call,
    stats_after,
    vad,
    voice,
)

__all__ = ["clock", "vad"]  # the shared fixtures: every test here hears the scripted VAD


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Scorer]:
    def make(*scores: float | Exception) -> Scorer:
        s = Scorer(*scores)
        monkeypatch.setattr(smart_turn, "shared", lambda: s)
        return s

    return make


def test_a_sentence_final_pause_previews_the_turn_and_its_speculative_pass_is_the_final(clock):
    engine = Engine(clock)

    async def main() -> Call:
        async with Call(engine) as c:
            c.audio(TURN)
            await c.finals()
            await c.until(lambda: c.stats.frames == 59)
        return c

    c = run_call(main)
    assert c.events[:6] == [
        {"type": "json", "event": "speech_onset", "utterance": 1, "at": 0.08},
        {"type": "json", "event": "speech_started", "utterance": 1, "at": 0.08},
        {"type": "json", "event": "speech_continuing", "utterance": 1, "at": 0.28, "voiced_ms": 200},
        {"type": "json", "event": "speech_paused", "utterance": 1, "at": 0.48, "voiced_ms": 300},
        {"type": "json", "event": "turn_preview", "utterance": 1, "text": FINAL, "at": 0.62},
        # The decision and the words it read travel with the end, so the held reply can play before the final.
        {"type": "json", "event": "speech_ended", "utterance": 1, "start": 0.08, "end": 0.38, "eos_wait_ms": 240,
         "eot": {"reason": "sentence_end", "silence_ms": 240, "sentence_end": True, "smart_turn": None},
         "text": FINAL, "source": "asr"}]
    assert c.events[6:] == [{"type": "transcription", "data": {
        "event": "transcript", "utterance": 1, "final": True, "text": FINAL, "source": "asr", "engine": "scripted",
        "start": 0.08, "end": 0.38, "eos_wait_ms": 240, "asr_ms": 750, "asr_wait_ms": 0,
        # Engine times are from the start of the utterance audio, which is 40 ms of prefix before the voice.
        "segments": [{"text": FINAL, "start": 0.14, "end": 0.34, "speaker": 2}],
        "eot": {"reason": "sentence_end", "silence_ms": 240, "sentence_end": True, "smart_turn": None}}}]
    # One pass only, at 200 ms of silence: prefix pad, voice and 200 ms of trailing silence, as 16-bit mono.
    [(pcm, rate, context)] = engine.calls
    assert (rate, context, pcm.dtype, len(pcm)) == (RATE, CONTEXT, np.int16, 27 * 160)
    assert not pcm[:320].any() and (pcm[320:2720] == 1000).all() and not pcm[2720:].any()
    assert c.stats.as_dict() == stats_after(c.stats, messages=59, frames=59, bytes=59 * FRAME, utterances=1,
                                            asr_calls=1, asr_ms_sum=750.0, speculative_used=1, turn_previews=1,
                                            turns_sentence_end=1)


def test_without_a_speculative_pass_the_turns_end_on_silence_and_asr_runs_after(clock, caplog):
    engine = Engine(clock, OPEN, FINAL)
    pool = Pool()

    async def main() -> Call:
        async with Call(engine, cfg=replace(CFG, speculative_ms=0), pool=pool) as c:
            c.audio(TURN + TURN)
            await c.finals(2)
        return c

    with caplog.at_level(logging.DEBUG, logger="agent.worker.session"):
        c = run_call(main)
    assert caplog.records == []  # no pass to wait for at the checks, so none failed
    for n in (1, 2):  # the final may leave after the next utterance's first events
        assert kinds(of(c.events, n)) == [
            "speech_onset", "speech_started", "speech_continuing", "speech_paused", "speech_ended", "final"]
    one, two = finals(c.events)
    assert (one["utterance"], one["text"], two["utterance"], two["text"]) == (1, OPEN, 2, FINAL)
    # No transcript at the checks, so no preview and no words with the end: the reply waits for the final.
    assert named(c.events, "speech_ended")[1] == {
        "type": "json", "event": "speech_ended", "utterance": 2, "start": 1.26, "end": 1.56, "eos_wait_ms": 600,
        "eot": {"reason": "silence", "silence_ms": 600, "sentence_end": None, "smart_turn": None}}
    assert (one["eos_wait_ms"], one["asr_ms"], one["asr_wait_ms"]) == (600, 750, 750)
    assert one["eot"] == {"reason": "silence", "silence_ms": 600, "sentence_end": None, "smart_turn": None}
    assert c.stats.turns_silence == 2 and c.stats.turn_previews == 0 and c.stats.speculative_used == 0
    assert c.stats.asr_ms_sum == 1500.0 and pool.jobs == ["transcribe", "transcribe"]
    assert [(len(pcm), rate, context) for pcm, rate, context in engine.calls] == [(27 * 160, RATE, CONTEXT)] * 2


def test_a_burst_shorter_than_speech_is_dropped_only_where_its_onset_went_out(clock):
    async def main() -> Call:
        async with Call(Engine(clock)) as c:
            c.audio(quiet(4) + voice(3) + quiet(10) + voice(1) + quiet(10) + TURN)
            await c.finals()
        return c

    c = run_call(main)
    assert c.events[:3] == [{"type": "json", "event": "speech_onset", "utterance": 1, "at": 0.08},
                            {"type": "json", "event": "speech_dropped", "utterance": 1, "at": 0.24, "voiced_ms": 60},
                            {"type": "json", "event": "speech_onset", "utterance": 1, "at": 0.64}]
    assert finals(c.events)[0]["utterance"] == 1


def test_a_vetoed_preview_is_resumed_when_the_caller_goes_on_then_previewed_again(clock, scorer):
    s = scorer(0.5)  # below the veto: a sentence-final transcript does not end the turn
    engine = Engine(clock)

    async def main() -> Call:
        async with Call(engine, cfg=replace(CFG, smart_turn=True)) as c:
            c.audio(quiet(4) + voice(15) + quiet(22) + voice(5) + quiet(22) + voice(5) + quiet(40))
            await c.finals()
        return c

    c = run_call(main)
    assert kinds(c.events) == ["speech_onset", "speech_started", "speech_continuing", "speech_paused",
                               "turn_preview", "turn_resumed", "speech_paused", "turn_preview", "turn_resumed",
                               "speech_paused", "turn_preview", "speech_ended", "final"]
    assert named(c.events, "turn_resumed")[0] == {"type": "json", "event": "turn_resumed", "utterance": 1, "at": 0.82}
    assert named(c.events, "turn_preview")[1] == {"type": "json", "event": "turn_preview", "utterance": 1,
                                                  "text": FINAL, "at": 1.16}
    assert [e["voiced_ms"] for e in named(c.events, "speech_paused")] == [300, 400, 500]
    final = finals(c.events)[0]
    assert final["eot"] == {"reason": "silence", "silence_ms": 600, "sentence_end": True, "smart_turn": 0.5}
    assert (final["end"], final["eos_wait_ms"]) == (1.46, 600)
    # The last preview still stands when the fallback ends the turn: its words go with the end.
    assert named(c.events, "speech_ended")[0]["text"] == FINAL
    # Scored at both checks of each pause, on the audio up to the pause (16-bit, at the fork's rate).
    assert [(p.dtype, len(p), rate) for p, rate in s.calls[:1]] == [(np.int16, 27 * 160, RATE)]
    assert len(s.calls) == c.stats.smart_turn_calls == 6
    assert (c.stats.turn_previews, c.stats.speculative_wasted, c.stats.speculative_used) == (3, 2, 1)


@pytest.mark.parametrize("veto, threshold, score, scored", [(0.95, 0.995, 0.999, 2), (0.0, 0.9, 0.95, 1)])
def test_the_audio_model_alone_ends_a_turn_whose_transcript_says_nothing(clock, scorer, veto, threshold, score,
                                                                         scored):
    s = scorer(score)
    pool = Pool()
    cfg = replace(CFG, smart_turn=True, smart_turn_veto=veto, smart_turn_threshold=threshold)

    async def main() -> Call:
        async with Call(Engine(clock, ""), cfg=cfg, pool=pool) as c:
            c.audio(TURN)
            await c.finals()
        return c

    c = run_call(main)
    assert "turn_preview" not in kinds(c.events)
    assert finals(c.events)[0]["eot"] == {"reason": "audio_model", "silence_ms": 400, "sentence_end": None,
                                          "smart_turn": score}
    # With a veto, scored at both checks (only the one read at 400 ms counts); without, only where it can end
    # the turn alone. In the call's pool, beside the transcript.
    assert len(s.calls) == pool.jobs.count("_score") == scored
    assert c.stats.smart_turn_calls == 1 and c.stats.turns_audio_model == 1


@pytest.mark.parametrize("error, calls, line", [
    (smart_turn.SmartTurnUnavailable("no model"), 1, "call call-1: Smart Turn off: no model"),
    (RuntimeError("boom"), 2, "call call-1: Smart Turn failed: RuntimeError('boom')")])
def test_smart_turn_failing_leaves_the_transcript_to_decide_and_unavailable_turns_it_off(
        clock, scorer, caplog, error, calls, line):
    s = scorer(error)

    async def main() -> Call:
        async with Call(Engine(clock), cfg=replace(CFG, smart_turn=True)) as c:
            c.audio(TURN + TURN)
            await c.finals(2)
        return c

    with caplog.at_level(logging.WARNING, logger="agent.worker.session"):
        c = run_call(main)
    assert [f["eot"]["reason"] for f in finals(c.events)] == ["sentence_end", "sentence_end"]
    assert len(s.calls) == calls and c.stats.smart_turn_calls == 0 and c.stats.speculative_used == 2
    assert [r.getMessage() for r in caplog.records] == [line] * calls


def test_an_unneeded_audio_model_score_that_failed_is_not_reported_as_never_retrieved(clock, scorer):
    scorer(RuntimeError("boom"))
    reported: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx["message"]))
        async with Call(Engine(clock, OPEN), cfg=replace(CFG, smart_turn=True, audio_model_ms=2000)) as c:
            c.audio(TURN)
            await c.finals()
        gc.collect()

    run(main)
    assert reported == []


def test_an_injected_text_is_the_turn_s_transcript_and_no_asr_runs(clock):
    engine = Engine(clock)

    async def main() -> Call:
        async with Call(engine, allow_injection=True) as c:
            c.send(inject("취소"), inject(FINAL))  # the last one before the end of the turn counts
            c.audio(TURN)
            await c.finals()
        return c

    c = run_call(main)
    assert named(c.events, "turn_preview") == [{"type": "json", "event": "turn_preview", "utterance": 1,
                                                "text": FINAL, "at": 0.62}]
    [ended] = named(c.events, "speech_ended")
    assert (ended["text"], ended["source"]) == (FINAL, "text-injected")
    assert finals(c.events) == [{
        "event": "transcript", "utterance": 1, "final": True, "text": FINAL, "source": "text-injected",
        "engine": "text-injected", "start": 0.08, "end": 0.38, "eos_wait_ms": 240, "asr_ms": 0, "asr_wait_ms": 0,
        "segments": [{"text": FINAL, "start": 0.08, "end": 0.38, "speaker": None}],
        "eot": {"reason": "sentence_end", "silence_ms": 240, "sentence_end": True, "smart_turn": None}}]
    assert engine.calls == [] and c.stats.injected == 2 and c.stats.asr_calls == 0


def test_an_injection_after_the_speculative_pass_wins_and_holds_for_one_utterance_only(clock):
    engine = Engine(clock)

    async def main() -> Call:
        async with Call(engine, allow_injection=True) as c:
            c.audio(TURN[:30 * FRAME])  # up to 220 ms of silence: the speculative pass has started
            await c.until(lambda: len(engine.calls) == 1)
            c.send(inject(OPEN))
            c.audio(TURN[30 * FRAME:] + TURN)
            await c.finals(2)
        return c

    c = run_call(main)
    one, two = finals(c.events)
    assert (one["text"], one["source"], one["eot"]["reason"], one["eot"]["sentence_end"]) == (
        OPEN, "text-injected", "silence", False)  # the injected text decided the turn: it goes on
    assert (two["text"], two["source"], two["utterance"]) == (FINAL, "asr", 2)
    assert [e["utterance"] for e in named(c.events, "turn_preview")] == [2]
    assert (c.stats.speculative_wasted, c.stats.speculative_used) == (1, 1)


def test_an_empty_injection_has_no_segments(clock):
    async def main() -> Call:
        async with Call(Engine(clock), allow_injection=True) as c:
            c.send(inject(""))
            c.audio(TURN)
            await c.finals()
        return c

    final = finals(run_call(main).events)[0]
    assert (final["text"], final["segments"], final["eot"]["reason"]) == ("", [], "silence")


def test_text_frames_other_than_an_allowed_injection_change_nothing(clock, caplog):
    async def main() -> Call:
        async with Call(Engine(clock), allow_injection=False) as c:
            c.send(inject(5), '{"final":true}', inject(OPEN), inject(None))
            c.audio(TURN)
            await c.finals()
        return c

    with caplog.at_level(logging.DEBUG, logger="agent.worker.session"):
        c = run_call(main)
    assert (finals(c.events)[0]["source"], c.stats.injected, c.stats.errors) == ("asr", 0, 2)
    assert [(r.levelno, r.getMessage()) for r in caplog.records][:4] == [
        (logging.WARNING, "call call-1: bad text frame ignored: 'callagent.inject' needs a string 'text', got 5"),
        (logging.DEBUG, "call call-1: text frame ignored (14 chars)"),
        (logging.WARNING, "call call-1: text injection refused (worker.allow_text_injection is off)"),
        (logging.WARNING, "call call-1: bad text frame ignored: 'callagent.inject' needs a string 'text', got None")]


def test_heartbeats_count_the_audio_received_of_a_stereo_fork(clock, monkeypatch):
    monkeypatch.setattr(worker_session, "HEARTBEAT_S", 0.01)

    async def main() -> Call:
        c = Call(Engine(clock), channels=2)
        # 2.5 s of two channels and a half millisecond more (rounded to even: 2500), read before the first beat.
        c.audio(bytes(2 * FRAME * 125))
        c.send(bytes(16), '{"final":true}')  # text is not audio
        async with c:
            await c.until(lambda: sum('"heartbeat"' in m for m in c.conn.sent) >= 2)
        return c

    beats = [json.loads(m) for m in run_call(main).conn.sent if '"heartbeat"' in m]
    assert beats[:2] == [{"type": "json", "event": "heartbeat", "seq": n, "audio_ms": 2500,
                          "at": round(80016 / 32000, 3)} for n in (1, 2)]


def test_a_live_decoder_gives_the_turn_signals_and_the_final_and_closes_the_segment_once_the_turn_ends(clock):
    engine = LiveEngine(clock)
    pool = Pool()

    async def main() -> Call:
        async with Call(engine, pool=pool) as c:
            c.send(TURN[:33 * FRAME] + TURN)  # one message: the second utterance runs after the first ends
            await c.finals(2)
        return c

    c = run_call(main)
    assert [(e["utterance"], e["at"]) for e in named(c.events, "turn_preview")] == [(1, 0.62), (2, 1.28)]
    one, two = finals(c.events)
    assert (one["text"], one["engine"], one["eot"]["reason"]) == (engine.final, "live", "sentence_end")
    assert [s["start"] for s in one["segments"] + two["segments"]] == [0.14, 0.8]
    assert engine.calls == [] and c.stats.live_decoded == 2  # no speculative pass beside the decoder
    assert [d.checkpoints for d in engine.decoders] == [1, 1]
    assert {"_open", "_accept", "_partial", "_checkpoint", "_result"} == set(pool.jobs)  # all in the call's pool
    # Prefix and voice up to the confirmation, every frame after it up to the check, then 250 ms of padding.
    assert engine.decoders[0].samples == (7 + 22) * 160 + 2000


def test_a_streaming_engine_gets_all_the_caller_audio_and_its_partials_carry_the_current_utterance(clock):
    engine = StreamEngine(clock)
    pool = Pool("_read")

    async def main() -> Call:
        async with Call(engine, pool=pool) as c:
            c.send(TURN)  # one message: the audio after the turn check is read out once the check resolved
            await c.finals()
            await c.until(lambda: c.stats.frames == 59)
            assert engine.stream.fed == 59 * 160
            c.send(quiet(10))  # no check: read out as it is processed
            pool.release()  # the relay's reader: one partial
            await c.until(lambda: "partial" in kinds(c.events) and c.stats.frames == 69)
            assert engine.stream.fed == 69 * 160
        return c

    c = run_call(main)
    [partial] = [e["data"] for e in c.events if e["type"] == "transcription" and not e["data"]["final"]]
    assert (partial["utterance"], partial["text"]) == (1, "배송")
    assert engine.ended == ["call-1"]


def test_a_stereo_fork_hears_the_caller_on_the_left_channel_only(clock):
    engine = Engine(clock)
    left = np.frombuffer(TURN, "<i2")
    right = np.where(np.arange(len(left)) > 40 * 160, 3000, 0)  # the agent talking once the caller is quiet

    async def main() -> Call:
        async with Call(engine, channels=2) as c:
            c.audio(np.column_stack([left, right]).astype("<i2").tobytes())
            await c.finals()
        return c

    c = run_call(main)
    [ended] = named(c.events, "speech_ended")
    assert (ended["start"], ended["end"], ended["text"]) == (0.08, 0.38, FINAL)
    assert len(engine.calls[0][0]) == 27 * 160 and c.stats.frames == 59


def test_the_call_s_tasks_are_named_after_it(clock):
    async def main() -> set[str]:
        async with Call(Engine(clock)):
            await asyncio.sleep(0)
            return {t.get_name() for t in asyncio.all_tasks()}

    assert {"asr-call-1", "heartbeat-call-1", "read-call-1"} <= asyncio.run(main())  # type: ignore[operator]


def test_a_partial_before_any_speech_belongs_to_no_utterance(clock):
    async def main() -> Call:
        async with Call(StreamEngine(clock)) as c:  # the relay reads the stream at once
            await c.until(lambda: "partial" in kinds(c.events))
        return c

    assert [e["data"]["utterance"] for e in run_call(main).events] == [0]
