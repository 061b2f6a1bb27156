"""The call session's life on a fake ESL socket, the parts the routing tests leave open: how a failing call is
handed over and stored, what its teardown survives and says, the fork settings taken from the configuration,
and a hand-off's default priority."""

from __future__ import annotations

import json
from typing import Any

import gevent

from agent.call.actions.listen import fork_token
from agent.esl.codec import Event, Message
from agent.esl.errors import CallGone, EslError
from tests.call.fast_fakes import UUID
from tests.call.test_session_routing_mutants import CONNECT, EslConn, _wait, make, played_out, started

__all__ = ["played_out"]  # the routing tests' autouse fixture: playbacks end at once


class NoHotwordsConn(EslConn):
    """A channel whose dialplan sets no `callagent_hotwords`."""

    def send(self, command: str, headers: Any = None, body: Any = None, timeout: Any = None) -> Message:
        self.sent.append(("command", command))
        return Message({k: v for k, v in CONNECT.items() if k != "variable_callagent_hotwords"})


def fork_start(s) -> str:
    (line,) = [x for x in s.conn.lines() if x.startswith(f"api uuid_audio_fork {UUID} start")]
    return line


def fork_metadata(s) -> dict[str, Any]:
    line = fork_start(s)
    return json.loads(line[line.index("{"):].rstrip("'"))  # the metadata is the quoted last argument


def test_the_fork_takes_its_mix_and_secret_from_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLAGENT_TEST_FORK_SECRET", "s3cret")
    s = started(tmp_path, fork_secret_env="CALLAGENT_TEST_FORK_SECRET", fork_mix="mono")
    assert " mono 16k callagent " in fork_start(s)
    meta = fork_metadata(s)
    assert meta["channels"] == 1 and meta["token"] == fork_token(UUID, "s3cret")
    s.group.kill()


def test_a_channel_without_hotwords_still_gets_its_fork(tmp_path):
    s = started(tmp_path, conn=NoHotwordsConn())
    assert "hotwords" not in fork_metadata(s) and s.state == "active"
    s.group.kill()


def test_a_hand_off_asked_without_a_priority_goes_at_priority_5(tmp_path):
    s = started(tmp_path)
    s.escalate("caller_request")
    _wait(lambda: "exit" in s.conn.lines())
    assert f"api uuid_setvar {UUID} ai_priority 5" in s.conn.lines()


def test_an_agent_failure_mid_call_apologises_and_hands_the_caller_over(tmp_path, caplog):
    caplog.set_level("INFO", logger="agent.call.session")
    s = make(tmp_path)
    real = s._on_event
    failed: list[str] = []

    def on_event(ev: Event) -> None:
        if ev.name == "CUSTOM" and not failed:
            failed.append(ev.name)
            raise RuntimeError("bug in a handler")
        real(ev)

    s._on_event = on_event  # type: ignore[method-assign]
    s.conn.event("CUSTOM", **{"Event-Subclass": "mod_audio_fork::connect"})
    g = gevent.spawn(s.run)
    _wait(lambda: "exit" in s.conn.lines())
    g.join(5)
    assert f"api uuid_setvar {UUID} escalation_reason agent_error" in s.conn.lines()
    assert s.deps.cfg.controller.apology in s.deps.prompts.asked  # the apology, not the plain transfer notice
    assert s.deps.cfg.controller.transfer_notice not in s.deps.prompts.asked
    assert f"call {UUID} failed" in [r.getMessage() for r in caplog.records]


def test_a_socket_gone_during_the_set_up_is_said_and_stored_as_failed(tmp_path, caplog):
    caplog.set_level("INFO", logger="agent.call.session")
    s = make(tmp_path, conn=EslConn(fail={"linger": CallGone("eof")}))
    s.run()
    assert [r.getMessage() for r in caplog.records if r.name == "agent.call.session"][-1] == \
        f"call {UUID}: socket gone"
    (end,) = s.deps.store.ends()
    assert end["end_reason"] == "failed"  # it never got past connecting: not a caller hang-up
    assert s.conn.closed


def test_a_fork_stop_the_switch_refuses_does_not_stop_the_teardown(tmp_path):
    s = started(tmp_path, conn=EslConn(fail={f"uuid_audio_fork {UUID} stop": EslError("-ERR no such channel")}))
    s.group.kill()
    s._teardown()
    assert s.conn.closed and s.deps.speaker.spool.cleaned == [UUID] and s.deps.policy.conv.closed == 1


def test_a_dialog_that_fails_to_close_is_logged_with_its_traceback(tmp_path, caplog):
    caplog.set_level("INFO", logger="agent.call.session")
    s = started(tmp_path)
    s.group.kill()
    s.deps.policy.conv.fail_close = True
    s._teardown()
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert error.getMessage() == f"call {UUID}: closing the conversation failed"
    assert str(error.exc_info[1]) == "close failed"


def test_no_recording_means_nothing_to_seal(tmp_path):
    sealed: list[Any] = []
    s = started(tmp_path, seal=lambda uuid, path: sealed.append(path))
    assert s.recorder is None
    s.group.kill()
    s._teardown()
    gevent.sleep(0.05)
    assert sealed == [] and s.conn.closed


def test_a_turn_times_its_reply_on_the_calls_clock(tmp_path):
    t = [1000.0]
    s = make(tmp_path)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    turn = s.start_turn({"text": "안녕하세요", "source": "asr"})
    _wait(lambda: turn.done)
    # Every stamp of the turn is on the call's clock (frozen here), so its own overhead is nil.
    assert turn.t_in == 1000.0 and turn.t_first_queued == 1000.0
    (row,) = [r for r in s.deps.store.turns() if r.get("source") == "policy"]
    assert row["detail"]["overhead_ms"] == 0.0
    s.group.kill()
