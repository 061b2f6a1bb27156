"""The simulator's own verdicts must be able to fail: `closed_after_hangup_complete` is false for an agent that
takes the linger notice for the end of the call and closes before CHANNEL_HANGUP_COMPLETE (freeswitch.md §1.7)."""

from __future__ import annotations

from eslpeer import EslPeer, connect, named, run_call, subscribe

from agent.sim import CallScript

SPEED = 8.0


def test_an_agent_that_closes_on_the_linger_notice_is_not_credited():
    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        peer.reply("linger")
        while peer.read_message(timeout=10).headers.get("Content-Disposition") != "linger":
            pass
        peer.close()  # the bug: the notice says events keep coming, yet the agent leaves

    log = run_call(agent, CallScript(steps=[{"sleep": 1}, "hangup"]), speed=SPEED)
    assert log.ended_by == "caller" and not log.closed_after_hangup_complete


def test_an_agent_that_waits_for_hangup_complete_is_credited():
    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        peer.reply("linger")
        peer.wait_event(named("CHANNEL_HANGUP_COMPLETE"))
        peer.close()

    log = run_call(agent, CallScript(steps=[{"sleep": 1}, "hangup"]), speed=SPEED)
    assert log.ended_by == "caller" and log.closed_after_hangup_complete


def test_an_agent_that_closes_without_a_hangup_is_not_credited():
    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        peer.reply("linger")
        peer.close()

    log = run_call(agent, CallScript(steps=[{"sleep": 5}]), speed=SPEED)
    assert not log.closed_after_hangup_complete
