"""What the call benchmarks read back: simulator timings, turn rows, frame timing and the load verdict."""

from __future__ import annotations

from agent.ops.bench import calls as c
from agent.ops.bench import load
from agent.ops.bench.procs import FrameClock
from agent.ops.bench.report import load_md
from agent.sim import CallLog, CommandRecord, Heard, Utterance


def _heard(t: float, utt_id: str, chunk: str = "0") -> Heard:
    return Heard(path="/x.wav", arg="/x.wav", headers={"utt_id": utt_id, "chunk": chunk}, app_uuid="a", t_start=t)


def _log() -> CallLog:
    log = CallLog(uuid="u1", answered_at=100.0)
    log.heard = [_heard(100.104, "g1"), _heard(110.0, "r2"), _heard(112.0, "r2", "1"), _heard(120.0, "r3")]
    log.utterances = [
        Utterance("a", None, False, 2.0, t_queued=105.0, t_first_voiced=105.1, t_last_voiced=107.0),
        Utterance("b", None, False, 2.0, t_queued=117.2, t_first_voiced=117.25, t_last_voiced=117.5, t_end=118.0,
                  barge_in=True),
        Utterance("c", None, False, 1.0, t_queued=125.0, t_first_voiced=125.1, t_last_voiced=126.0),
    ]
    log.commands = [CommandRecord(117.55, "api uuid_break u1 all", [], None, "+OK")]
    return log


def test_channel_timings():
    log = _log()
    assert abs(c.greeting_ms(log) - 104.0) < 1e-6
    v2v = c.voice_to_voice_ms(log)
    assert [round(v) if v is not None else None for v in v2v] == [3000, 2500, None]  # the last got no reply
    assert [round(v) for v in c.barge_in_ms(log)] == [300]


def test_barge_in_that_cut_nothing_and_a_vad_that_fired_early():
    log = _log()
    log.commands = []
    assert c.barge_in_ms(log) == [None]
    log.commands = [CommandRecord(117.21, "api uuid_break u1 all", [], None, "+OK")]
    assert round(c.barge_in_ms(log)[0]) == -40  # before the −40 dBFS onset, while the utterance streamed


def test_residual_is_v2v_minus_the_stored_parts():
    turns = [{"speaker": "agent", "source": "policy", "call_id": "u1", "eos_wait_ms": 800, "asr_ms": 1900,
              "first_audio_ms": 200, "detail": {"utt_id": "r2", "overhead_ms": 1.5}},
             {"speaker": "agent", "source": "prompt", "call_id": "u1", "detail": {}},
             {"speaker": "caller", "source": "asr", "call_id": "u1", "detail": {}}]
    replies = c.agent_turns(turns, "u1")
    assert len(replies) == 1 and c.overhead_ms(replies[0]) == 1.5
    assert [round(r) for r in c.reply_residuals_ms(_log(), replies)] == [100]  # 3000 − (800 + 1900 + 200)


def test_call_minutes_and_fork_totals():
    log = _log()
    log.t_end = 160.0
    assert c.call_minutes([log, CallLog(uuid="never answered")]) == 1.0
    assert c.fork_totals([log]) == {"packets_sent": 0, "packets_late": 0, "messages_sent": 0}


def test_frame_clock_counts_packets_processed_more_than_a_period_late():
    clock = FrameClock()
    assert clock.report()["late_frames"] is None  # not installed: untimed, not "zero late"
    clock.installed = True
    # (arrival − stream time of the message's first packet) per message, and message sizes: 640 B = 20 ms at 16 kHz.
    clock.streams.append(([10.000, 10.002, 10.045, 10.060], [640, 640, 640, 1920], 16000))
    rep = clock.report()
    # On time, 2 ms, 45 ms late; then three packets 60, 40 and 20 ms behind: 1 + 2 late.
    assert rep["frames"] == 6 and rep["late_frames"] == 3
    assert round(rep["lateness_ms"]["max"]) == 60


def test_refine_picks_the_midpoint_between_last_pass_and_first_fail():
    def lv(n, ok):
        return {"calls": n, "sustained": ok}
    assert load._refine([lv(25, True), lv(50, True), lv(100, False), lv(200, False)]) == 75
    assert load._refine([lv(25, True), lv(50, True)]) is None
    assert load._refine([lv(25, False)]) is None


def _level(**over):
    r = {"calls": 50, "worker_frames": 100000, "sim": {"packets_sent": 100000, "packets_late": 0},
         "sim_late_share": 0.0, "sim_cpu_core_share": 0.5, "worker_late_share": 0.0, "late_frames_at_worker": 0,
         "dropped_frames": 0,
         "frame_lateness_ms": {"p99": 3.0}, "answered": 50, "call_error_count": 0, "replies": 100,
         "expected_replies": 100}
    r.update(over)
    return r


def test_limits_name_what_broke():
    assert load._limits(_level()) == []
    assert load._limits(_level(worker_late_share=0.0005)) == []            # within 0.1 %
    assert "fell more than 20 ms behind 0.50 %" in load._limits(_level(worker_late_share=0.005))[0]
    assert load._limits(_level(worker_late_share=None)) == ["the worker reported no loop timing"]
    assert load._limits(_level(sim_late_share=0.01))[0].startswith("inconclusive")
    assert load._limits(_level(sim_cpu_core_share=0.95, sim_core_busy=0.99)) == [
        "inconclusive: the simulator sent 0 packets late (it used 95 % of its core, which was 99 % busy)"]
    both = load._limits(_level(worker_late_share=0.005, sim_late_share=0.01, sim={"packets_sent": 100000,
                                                                                 "packets_late": 1000}))
    assert both[0].startswith("the worker fell") and both[1] == "the simulator sent 1000 packets late"
    assert load._limits(_level(dropped_frames=3)) == ["3 frames sent but not processed"]
    assert load._limits(_level(replies=99)) == ["1 caller turns without a reply"]


def test_load_markdown_verdict():
    level = {**_level(), "call_minutes": 25.0, "mem_per_call_kib": {"controller": 300, "worker": 250},
             "cpu_s_per_call_minute": {"controller": 0.1, "tts_subprocesses": 0.05, "worker": 0.3,
                                       "agent_total": 0.45},
             "agent_cpu_core_share": 0.4, "other_cpu_core_share": 0.05, "overhead_ms": {"p50": 1.2, "p99": 8.0},
             "v2v_ms": {"p50": 1067.0}, "sustained": True, "limits": []}
    md = load_md({"engines": {"asr": "fake", "tts": "espeak", "dialog": "ScriptedPolicy"}, "turns_per_call": 2,
                  "agent_core": 0, "sim_core": 1, "late_tolerance": 0.001, "levels": [level],
                  "max_sustained_calls_one_core": 50, "lowest_failed_level": 100, "highest_level_tested": 100,
                  "cpu_bound_calls_one_core": 133.3, "limited_by_simulator": False})
    assert "**50**, not 100" in md and "≈ 133 calls" in md and "| 50 | 25.0 | 0.100 |" in md


def test_asr_wait_is_read_where_the_worker_reports_it():
    caller = {"call_id": "u1", "seq": 1, "speaker": "caller", "source": "asr", "detail": {"asr_wait_ms": 40.0}}
    reply = {"call_id": "u1", "seq": 2, "speaker": "agent", "source": "policy", "detail": {"utt_id": "r2"}}
    assert c.asr_wait_ms(reply, [caller, reply]) == 40.0
    assert c.asr_wait_ms(reply, [reply]) is None
    # With it, the residual uses the wait instead of the whole recognition time.
    reply.update(eos_wait_ms=800, asr_ms=1900, asr_wait_ms=1800, first_audio_ms=200)
    assert [round(r) for r in c.reply_residuals_ms(_log(), [reply])] == [200]


def test_load_verdict_is_a_lower_bound_when_the_simulator_was_the_limit():
    from agent.ops.bench.report import _load_verdict

    r = {"max_sustained_calls_one_core": 100, "lowest_failed_level": 200, "limited_by_simulator": True,
         "late_tolerance": 0.001, "cpu_bound_calls_one_core": None}
    assert "**100** or more: at 200 the simulator" in _load_verdict(r)
    r.update(max_sustained_calls_one_core=None)
    assert _load_verdict(r).startswith("No level tested was sustained")


def test_call_scripts(tmp_path):
    from pathlib import Path

    from agent.sim.scenario import BargeIn, Hangup, SayAudio, SayText, WaitPlayback

    text_only = c.latency_script(0, [], None)
    kinds = [type(s) for s in text_only.steps]
    assert kinds.count(SayText) == 2 and isinstance(text_only.steps[-1], Hangup)
    barge = next(s for s in text_only.steps if isinstance(s, BargeIn))
    assert barge.text and barge.after_ms == c.BARGE_AFTER_MS
    clips = [c.Clip(Path(f"/s/{i}.flac"), 5.0) for i in range(3)]
    real = c.latency_script(1, clips, tmp_path / "barge.wav")
    assert [s.path.name for s in real.steps if isinstance(s, SayAudio)] == ["2.flac", "0.flac"]
    assert next(s for s in real.steps if isinstance(s, BargeIn)).path == tmp_path / "barge.wav"
    load_steps = c.load_script(3, tmp_path / "x.wav", 2).steps
    assert [type(s) for s in load_steps].count(SayAudio) == 2
    assert [type(s) for s in load_steps].count(WaitPlayback) == 2  # each turn waits for its reply to start


def test_gated_clip_silences_only_the_lead_in(tmp_path):
    import numpy as np
    import soundfile as sf

    rate = 8000
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(rate // 2) * 10 ** (-50 / 20)).astype(np.float32)  # room noise, −50 dBFS
    t = np.arange(rate) / rate
    speech = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    tail = (rng.standard_normal(rate // 4) * 10 ** (-50 / 20)).astype(np.float32)
    sf.write(tmp_path / "in.wav", np.concatenate([noise, speech, tail]), rate, subtype="PCM_16")
    out, got_rate = sf.read(c.gated_clip(tmp_path / "in.wav", tmp_path / "out.wav"), dtype="float32")
    assert got_rate == rate and len(out) == rate // 2 + rate + rate // 4
    assert not out[: rate // 2].any()  # the noise before the speech is gone
    np.testing.assert_allclose(out[rate // 2:], np.concatenate([speech, tail]), atol=1e-4)  # the rest as recorded


def test_korean_clips_from_the_manifest(tmp_path):
    head = "file\tlanguage\tduration_s\tsample_rate\tspeakers\treference_transcript\n"
    rows = ["ko/a.flac\tko\t9.0\t16000\t1\t-", "ko/b.flac\tko\t4.0\t16000\t1\t하나", "ko/c.flac\tko\t15.0\t16000\t1\t-",
            "en/d.flac\ten\t3.0\t16000\t1\tONE", "ko/e.wav\tko\t5.0\t16000\t2\t-"]
    (tmp_path / "MANIFEST.tsv").write_text(head + "\n".join(rows) + "\n", encoding="utf-8")
    for r in rows:
        path = tmp_path / r.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    # Korean, one speaker, at most 11 s, shortest first; the transcript does not matter.
    assert [clip.path.name for clip in c.korean_clips(tmp_path)] == ["b.flac", "a.flac"]
    assert c.korean_clips(tmp_path / "missing") == []
