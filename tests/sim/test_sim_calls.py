"""Scripted calls through FreeSwitchSim.run_call / run_calls against a minimal raw-socket test agent."""

from __future__ import annotations

import time

import pytest
from eslpeer import AgentServer, EslPeer, connect, named, needs_espeak, run_call, write_tone

from agent.sim import (
    BargeIn,
    CallScript,
    Dtmf,
    ExpectTransfer,
    FreeSwitchSim,
    SayAudio,
    ScenarioError,
    WaitIdle,
    load_script,
)
from agent.sim.scenario import Echo, speech_dir

SPEED = 8.0
TOL = 0.04          # scheduling slack on loopback, seconds


def _answer_and_subscribe(peer: EslPeer) -> str:
    uuid = connect(peer)
    peer.reply("myevents")
    peer.reply("event plain PLAYBACK_START PLAYBACK_STOP")
    peer.reply("linger 2")
    peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: answer")
    return uuid


def test_scripted_call_records_what_was_heard_and_said_with_real_durations(tmp_path):
    hello = write_tone(str(tmp_path / "hello.wav"), 1.0)
    menu = write_tone(str(tmp_path / "menu.wav"), 0.6, rate=16000)
    bye = write_tone(str(tmp_path / "bye.wav"), 0.4)
    said = write_tone(str(tmp_path / "said.wav"), 0.8, lead_s=0.3, tail_s=0.3)

    def agent(peer: EslPeer) -> None:
        uuid = _answer_and_subscribe(peer)
        peer.reply(f"api uuid_broadcast {uuid} {{utt_id=1,chunk=0}}{hello} aleg")
        peer.reply(f"api uuid_broadcast {uuid} {{utt_id=1,chunk=1}}{menu} aleg")
        peer.wait_event(named("DTMF", DTMF_Digit="#"), timeout=10)
        # `playback!<cause>::<path>` queues a hangup behind the prompt (§4).
        assert peer.reply(f"api uuid_broadcast {uuid} playback!normal_clearing::{{utt_id=2}}{bye}").body == (
            b"+OK Message sent\n")
        peer.wait_event(named("CHANNEL_HANGUP_COMPLETE"))
        peer.reply("exit")

    script = CallScript(name="happy", steps=[{"wait_playback": {}}, WaitIdle(settle_ms=300),
                                             SayAudio(path=said), Dtmf("#"), {"sleep": 60}])
    log = run_call(agent, script, speed=SPEED)
    assert log.errors == [] and log.ended_by == "agent_hangup" and log.closed_after_hangup_complete
    assert [(h.headers, h.ms, h.status) for h in log.heard] == [
        ({"utt_id": "1", "chunk": "0"}, 1000, "done"), ({"utt_id": "1", "chunk": "1"}, 600, "done"),
        ({"utt_id": "2"}, 400, "done")]
    for heard, seconds in zip(log.heard, (1.0, 0.6, 0.4), strict=True):
        assert heard.t_stop - heard.t_start == pytest.approx(seconds / SPEED, abs=TOL)
    # The prompts play back to back (lead frames only); the caller waited for both plus the settle time.
    assert log.heard[1].t_start - log.heard[0].t_stop < 0.1 / SPEED + TOL
    [utt] = log.utterances
    assert utt.t_queued >= log.heard[1].t_stop + 0.3 / SPEED
    assert utt.t_first_voiced - utt.t_queued == pytest.approx(0.3 / SPEED, abs=TOL)
    assert utt.t_last_voiced - utt.t_first_voiced == pytest.approx(0.8 / SPEED, abs=TOL)
    assert not utt.injected and utt.path == said
    dtmf_t = log.dtmf[0][0]
    assert log.first_playback_start_after(dtmf_t) is log.heard[2]
    assert log.response_latencies() == [pytest.approx(log.heard[2].t_start - utt.t_last_voiced)]
    assert log.answered_at is not None and log.connected_at <= log.answered_at


@needs_espeak
def test_barge_in_speaks_over_a_running_prompt(tmp_path):
    long_prompt = write_tone(str(tmp_path / "long.wav"), 8.0)

    def agent(peer: EslPeer) -> None:
        uuid = _answer_and_subscribe(peer)
        peer.reply(f"api uuid_broadcast {uuid} {long_prompt}")
        peer.wait_event(named("CHANNEL_HANGUP_COMPLETE"), timeout=10)
        peer.reply("exit")

    log = run_call(agent, CallScript(steps=[BargeIn(text="잠깐만요", after_ms=800)]), speed=SPEED)
    [heard] = log.heard
    [utt] = log.utterances
    assert utt.barge_in and utt.injected and utt.text == "잠깐만요"
    assert heard.t_start + 0.8 / SPEED <= utt.t_first_voiced < heard.t_stop
    assert log.ended_by == "caller" and heard.status == "done" and heard.ms < 8000   # cut by the hangup


def test_missing_transfer_is_a_script_error():
    def agent(peer: EslPeer) -> None:
        _answer_and_subscribe(peer)
        time.sleep(0.2)
        peer.reply("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING")
        peer.wait_event(named("CHANNEL_HANGUP_COMPLETE"))
        peer.reply("exit")

    log = run_call(agent, CallScript(steps=[ExpectTransfer(timeout_s=3)]), speed=SPEED)
    assert log.ended_by == "agent_hangup"
    assert len(log.errors) == 1 and "expected a transfer" in log.errors[0] and "hung up" in log.errors[0]


def test_run_calls_runs_calls_concurrently(tmp_path):
    prompt = write_tone(str(tmp_path / "p.wav"), 2.0)
    server = AgentServer()

    def agent(peer: EslPeer) -> None:
        uuid = _answer_and_subscribe(peer)
        peer.reply(f"api uuid_broadcast {uuid} playback!::{prompt}")
        peer.wait_event(named("CHANNEL_HANGUP_COMPLETE"), timeout=10)
        peer.reply("exit")

    server.serve(agent, calls=3)
    sim = FreeSwitchSim(server.addr, speed=SPEED)
    t0 = time.monotonic()
    logs = sim.run_calls([CallScript(caller=f"0101234000{i}", steps=[{"sleep": 60}]) for i in range(3)])
    elapsed = time.monotonic() - t0
    server.join()
    sim.cleanup()
    assert len({log.uuid for log in logs}) == 3
    assert all(log.ended_by == "agent_hangup" and log.heard[0].ms == 2000 for log in logs)
    assert elapsed < 2 * 2.0 / SPEED + 0.5          # overlapping, not one after another


def test_yaml_script_resolves_paths_and_rejects_bad_steps(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "order.yaml").write_text(
        "name: order\ncaller: '01099998888'\ndestination: 15881234\n"
        "variables: {callagent_industry: ecommerce, callagent_tenant: 7}\n"
        "steps:\n  - wait_playback\n  - wait_idle: {settle_ms: 500}\n  - say_text: 주문 조회하고 싶어요\n"
        "  - say_audio: {path: audio/a.wav, inject_text: 배송 언제 와요}\n"
        "  - say_audio: $SPEECH/ko/zeroth/104_003_0019.flac\n"
        "  - barge_in: {text: 상담원 연결, after_ms: 700}\n  - dtmf: 0\n  - sleep: 1.5\n"
        "  - expect_transfer: {timeout_s: 5}\n  - hangup\n", encoding="utf-8")
    script = load_script(tmp_path / "order.yaml")
    assert (script.name, script.caller, script.destination) == ("order", "01099998888", "15881234")
    assert script.variables == {"callagent_industry": "ecommerce", "callagent_tenant": "7"}
    kinds = [type(s).__name__ for s in script.steps]
    assert kinds == ["WaitPlayback", "WaitIdle", "SayText", "SayAudio", "SayAudio", "BargeIn", "Dtmf",
                     "Sleep", "ExpectTransfer", "Hangup"]
    assert script.steps[1].settle_ms == 500 and script.steps[6].digits == "0"
    assert script.steps[3].path == tmp_path / "audio" / "a.wav"
    assert script.steps[3].inject_text == "배송 언제 와요"
    assert script.steps[4].path == speech_dir() / "ko" / "zeroth" / "104_003_0019.flac"
    assert script.steps[5].after_ms == 700 and script.steps[8].timeout_s == 5.0

    (tmp_path / "bad.yaml").write_text("steps:\n  - wait_idle\n  - barge_in: {after_ms: 5}\n",
                                       encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"step 1 \(barge_in\): barge_in needs exactly one of text or"):
        load_script(tmp_path / "bad.yaml")
    with pytest.raises(ScenarioError, match=r"step 0 \(dtmf\)"):
        CallScript(steps=[{"dtmf": "x"}])
    with pytest.raises(ScenarioError, match="unknown step 'shout'"):
        CallScript(steps=["shout"])


def test_script_yaml_takes_codec_echo_queue_time_and_inband_digits(tmp_path):
    path = tmp_path / "wideband.yaml"
    path.write_text("codec: g722\necho: {delay_ms: 80, gain_db: -18}\nqueue_s: 5\n"
                    "steps:\n  - dtmf: {digits: '12#', inband: true}\n  - dtmf: 3\n", encoding="utf-8")
    script = load_script(path)
    assert (script.codec, script.echo, script.queue_s) == ("G722", Echo(delay_ms=80, gain_db=-18.0), 5.0)
    assert script.steps == [Dtmf(digits="12#", inband=True), Dtmf(digits="3")]
    for bad in ("codec: opus\n", "echo: {delay_ms: 400}\n", "queue_s: -1\n"):
        (tmp_path / "bad.yaml").write_text(bad + "steps: []\n", encoding="utf-8")
        with pytest.raises(ScenarioError):
            load_script(tmp_path / "bad.yaml")
