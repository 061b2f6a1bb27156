"""The simulated channel follows the project's dialplan XML: the `socket` host list, the fallback after
`socket`, and transfers that keep the channel and its media bugs (freeswitch.md §1.3, §1.7, §5, §10)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from eslpeer import AgentServer, EslPeer, connect, events_until, named, run_call, write_tone
from wsserver import WsServer, collect

from agent.sim import CallScript, FreeSwitchSim
from agent.sim.dialplan import Dialplan, expand

SPEED = 8.0
FORK_EVENTS = "event plain CUSTOM mod_audio_fork::connect mod_audio_fork::connect_failed"


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]       # closed again before the call: connection refused


def test_public_did_and_the_escalation_context_are_read_from_the_xml():
    plan = Dialplan.load()
    vars_ = {"destination_number": "15882000"}
    actions, matched = plan.hunt("public", vars_.get)
    assert matched == ["callagent_banking"]
    assert ("set", "callagent_industry=banking") in [(a.app, a.data) for a in actions]
    assert ("set", "ai_did=15882000") in [(a.app, a.data) for a in actions]
    human = {"destination_number": "human", "escalation_reason": "caller_requested"}
    actions, matched = plan.hunt("ai_escalation", human.get)
    # escalation_reason is set, so human_defaults does not apply; ai_priority is empty, so its default does.
    assert matched == ["human_default_priority", "human"]
    assert [a.app for a in actions][-2:] == ["callcenter", "transfer"]
    assert expand("${expr((10-${ai_priority})*60)}", {"ai_priority": "2"}.get) == "480"


def test_refused_host_moves_on_to_the_next_one():
    server = AgentServer()
    got = {}

    def agent(peer: EslPeer) -> None:
        got["uuid"] = connect(peer)
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    server.serve(agent)
    dead = refused_port()
    sim = FreeSwitchSim([("127.0.0.1", dead), server.addr], speed=SPEED)
    try:
        log = asyncio.run(sim.run_call(CallScript(steps=[{"sleep": 30}])))
    finally:
        server.join()
        sim.cleanup()
    assert log.dials == [("127.0.0.1", dead), server.addr]
    assert got["uuid"] == log.uuid and log.ended_by == "agent_hangup" and not log.fell_through
    assert log.channel_vars["current_application_data"] == (
        f"127.0.0.1:{dead}|127.0.0.1:{server.port} async full")


def test_connect_then_exit_does_not_try_the_next_host_but_runs_the_actions_after_socket():
    first, second = AgentServer(), AgentServer()
    first.serve(lambda peer: (connect(peer), peer.reply("exit")))
    second.serve(lambda peer: pytest.fail("the second host must not be dialled after connect + exit"))
    sim = FreeSwitchSim([first.addr, second.addr], speed=SPEED)
    try:
        log = asyncio.run(sim.run_call(CallScript(destination="15881000", steps=[{"sleep": 30}])))
    finally:
        first.join()
        second.sock.close()       # its accept loop is still waiting: nobody came, as it should be
        sim.cleanup()
    assert second.errors == []
    assert log.dials == [first.addr] and log.ended_by == "fell_through"
    # From dialplan/public/00_callagent.xml and dialplan/ai_escalation.xml, not hard-coded:
    assert log.route == [("public", "15881000", ["callagent_ecommerce"]),
                         ("ai_escalation", "human", ["human_defaults", "human_default_priority", "human"])]
    v = log.channel_vars
    assert (v["ai_fallback"], v["escalation_reason"], v["ai_priority"], v["cc_base_score"]) == (
        "true", "agent_unavailable", "5", "300")
    assert [(q.queue, q.cancel_reason) for q in log.queue] == [("support@default", "BREAK_OUT")]
    # The caller waited queue_s (2 s of call time) with music, then hung up.
    assert log.queue[0].t_leave - log.queue[0].t_join == pytest.approx(2.0 / SPEED, abs=0.2)


def test_every_host_refused_queues_the_caller():
    a, b = refused_port(), refused_port()
    sim = FreeSwitchSim([("127.0.0.1", a), ("127.0.0.1", b)], speed=SPEED)
    log = asyncio.run(sim.run_call(CallScript(steps=[{"sleep": 1}])))
    sim.cleanup()
    assert log.dials == [("127.0.0.1", a), ("127.0.0.1", b)]
    assert log.ended_by == "agent_unreachable" and [q.queue for q in log.queue] == ["support@default"]


def test_star_in_the_queue_leaves_it_for_a_callback_request():
    sim = FreeSwitchSim(("127.0.0.1", refused_port()), speed=SPEED)
    log = asyncio.run(sim.run_call(CallScript(steps=[{"dtmf": "*"}])))
    sim.cleanup()
    assert log.queue[0].cancel_reason == "EXIT_WITH_KEY"
    assert [t.ext for t in log.transfers] == ["human", "queue_exit", "callback"]
    [(name, subclass, headers)] = log.fired
    assert (name, subclass) == ("CUSTOM", "callagent::callback_request")
    assert headers["callback_number"] == "01012345678" and headers["escalation_reason"] == "agent_unavailable"


def _fork_then_transfer(tmp_path, *, stop_first: bool) -> tuple:
    """An agent that forks, talks, then transfers to the human queue (stopping the fork first or not);
    the caller keeps talking in the queue."""
    ws = WsServer(collect)
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        peer.reply(FORK_EVENTS)
        assert peer.reply(f"api uuid_audio_fork {uuid} start {ws.url(uuid)} mono 8k").body == b"+OK Success\n"
        peer.wait_event(named("CUSTOM", {"Event-Subclass": "mod_audio_fork::connect"}))
        time.sleep(0.5 / SPEED)
        if stop_first:
            assert peer.reply(f"api uuid_audio_fork {uuid} stop").body == b"+OK Success\n"
        got["t_transfer"] = time.monotonic()
        assert peer.reply(f"api uuid_transfer {uuid} human XML ai_escalation").body == b"+OK\n"
        peer.reply("exit")

    tone = write_tone(str(tmp_path / "in_queue.wav"), 1.0)
    script = CallScript(steps=[{"sleep": 30}, {"say_audio": tone}], queue_s=1.0)
    try:
        log = run_call(agent, script, speed=SPEED)
        assert ws.record["closed"].wait(5)
    finally:
        ws.close()
    after = sum(len(data) for t, data in ws.record["audio"] if t > got["t_transfer"] + 0.05)
    return log, after


def test_the_fork_survives_uuid_transfer_and_streams_the_callers_queue_audio(tmp_path):
    log, received_after = _fork_then_transfer(tmp_path, stop_first=False)
    assert log.transfer.via == "uuid_transfer" and log.bugs_at_transfer == ["audio_fork"]
    fork = log.fork
    assert fork.attached_at_transfer and fork.stopped_by == "hangup" and fork.t_stopped > log.transfer.t
    # ~1 s of speech + ~1.2 s trailing silence + 1 s in the queue, all streamed to the worker.
    assert fork.seconds_after_transfer > 2.0 and log.fork_bytes_after_transfer == fork.bytes_after_transfer
    assert received_after > 2.0 * 16000 * 0.9
    assert [u.t_first_voiced is not None for u in log.utterances] == [True]


def test_a_fork_stopped_before_the_transfer_streams_nothing_after_it(tmp_path):
    log, received_after = _fork_then_transfer(tmp_path, stop_first=True)
    assert log.bugs_at_transfer == [] and log.fork_bytes_after_transfer == 0 and received_after == 0
    assert log.fork.stopped_by == "stop" and log.fork.t_stopped < log.transfer.t


@pytest.mark.parametrize("late", [False, True])
def test_events_from_before_the_socket_can_arrive_late_and_carry_foreign_app_uuids(late: bool):
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        connect(peer)
        peer.reply("myevents")
        peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: answer\nEvent-UUID: mine-1")
        got["events"] = events_until(peer, lambda e: e["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"
                                     and e.get("Application-UUID") == "mine-1")
        peer.reply("exit")

    log = run_call(agent, CallScript(destination="15882000", steps=[{"sleep": 30}]), speed=SPEED,
                   late_events=late)
    early = [e for e in got["events"] if e.get("Application") in ("set", "pre_answer")]
    if not late:
        assert early == []
        return
    # The DID extension's own apps (§9): same Unique-ID, Application-UUIDs this agent never sent.
    assert [e["Application"] for e in early if e["Event-Name"] == "CHANNEL_EXECUTE"] == [
        "set", "set", "set", "pre_answer"]
    assert all(e["Unique-ID"] == log.uuid and e["Application-UUID"] != "mine-1" for e in early)
    assert got["events"][0]["Application"] == "set"        # they come first, right after subscribing
