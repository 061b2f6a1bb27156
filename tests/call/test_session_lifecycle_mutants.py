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
    """A channel whose dialplan sets no `callagent_hotwords`, for tenant `acme`."""

    def send(self, command: str, headers: Any = None, body: Any = None, timeout: Any = None) -> Message:
        self.sent.append(("command", command))
        headers = {k: v for k, v in CONNECT.items() if k != "variable_callagent_hotwords"}
        return Message({**headers, "variable_callagent_tenant": "acme"})


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


def test_a_channel_without_hotwords_still_gets_its_fork_for_its_tenant(tmp_path):
    s = started(tmp_path, conn=NoHotwordsConn())
    meta = fork_metadata(s)
    assert "hotwords" not in meta and meta["tenant"] == "acme" and s.state == "active"
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


def on_call_clock(tmp_path, **controller: Any):
    t = [1000.0]
    s = make(tmp_path, **controller)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    gevent.sleep(0.01)  # the ticker starts on the call's clock
    s.voice.break_all()  # the greeting is over
    s.fork.connected = True
    return s, t


def test_a_silent_caller_hears_the_goodbye_and_is_hung_up_on_when_so_configured(tmp_path):
    s, t = on_call_clock(tmp_path, no_input_timeout_s=5.0, no_input_prompts=["여보세요?"], no_input_action="hangup",
                         goodbye="통화를 종료합니다.", fork_heartbeat_timeout_s=0)
    t[0] += 6
    _wait(lambda: any(h.kind == "prompt" for h in s.voice.playout.handles.values()))
    s.voice.break_all()  # the caller heard the prompt and still says nothing
    t[0] += 6
    _wait(lambda: f"api uuid_kill {UUID} NORMAL_CLEARING" in s.conn.lines())
    assert s.deps.prompts.asked[-1] == "통화를 종료합니다." and s.state == "ending"
    lines = s.conn.lines()
    kill = lines.index(f"api uuid_kill {UUID} NORMAL_CLEARING")
    assert lines.index(f"api uuid_audio_fork {UUID} stop callagent") < kill  # the fork ends before the channel
    assert not any("escalation_reason" in x for x in lines)
    s.group.kill()


def test_a_silent_caller_goes_to_a_human_by_default(tmp_path):
    s, t = on_call_clock(tmp_path, no_input_timeout_s=5.0, no_input_prompts=["여보세요?"], fork_heartbeat_timeout_s=0)
    t[0] += 6
    _wait(lambda: any(h.kind == "prompt" for h in s.voice.playout.handles.values()))
    s.voice.break_all()  # the caller heard the prompt and still says nothing
    t[0] += 6
    _wait(lambda: "exit" in s.conn.lines())
    assert f"api uuid_setvar {UUID} escalation_reason no_input" in s.conn.lines()


def test_the_dialogs_call_length_rule_hands_the_caller_over_on_the_timer(tmp_path):
    from agent.dialog.policy import Escalate

    t = [1000.0]
    s = make(tmp_path, fork_heartbeat_timeout_s=0)
    s.deps.policy.conv.check_time = lambda: Escalate("time_limit", "긴 통화", 4)  # type: ignore[attr-defined]
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    gevent.sleep(0.01)
    s.fork.connected = True
    t[0] += 60
    _wait(lambda: "exit" in s.conn.lines())
    assert f"api uuid_setvar {UUID} escalation_reason time_limit" in s.conn.lines()
    assert f"api uuid_setvar {UUID} ai_priority 4" in s.conn.lines()


def test_the_barge_in_pause_limit_comes_from_the_configuration(tmp_path):
    s, t = on_call_clock(tmp_path, barge_in_max_pause_s=3.0, fork_heartbeat_timeout_s=0)
    s.barge.armed_at = t[0]
    s.voice.paused = True
    t[0] += 2.5
    gevent.sleep(0.3)
    assert s.deps.store.events("barge_in_resumed") == []  # the default 1.2 s would have resumed by now
    t[0] += 1.0
    _wait(lambda: s.deps.store.events("barge_in_resumed"))
    s.group.kill()


def test_the_worker_heartbeat_limit_comes_from_the_configuration(tmp_path):
    s, t = on_call_clock(tmp_path, fork_heartbeat_timeout_s=4.0)
    s.liveness.on_connect(t[0])
    t[0] += 3.0
    gevent.sleep(0.3)
    assert s.deps.store.events("fork_failed") == []
    t[0] += 2.0
    _wait(lambda: s.deps.store.events("fork_failed"))
    assert s.deps.store.events("fork_failed")[0]["detail"] == {"reason": "no heartbeat for 5.0 s"}
    _wait(lambda: "exit" in s.conn.lines())


def test_a_store_that_hangs_on_the_finished_check_does_not_hold_the_call(tmp_path):
    import threading

    from tests.call.test_session_routing_mutants import Store

    release = threading.Event()

    class Hanging(Store):
        def is_finished(self, call_id: str) -> bool:
            release.wait(30)
            return True

    s = make(tmp_path, store=Hanging())
    try:
        assert s._setup() and s.state == "active"  # answered after the 2 s bound, not when the store woke
    finally:
        release.set()
    s.group.kill()


def test_the_greeting_is_stored_as_the_agents_words_and_played_on_the_calls_clock(tmp_path):
    from agent.ops.logs import current_call

    t = [1000.0]
    s = make(tmp_path)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    assert s._setup()
    (greeting,) = s.deps.store.turns()
    assert greeting["speaker"] == "agent" and greeting["started_at"].startswith("20")
    (handle,) = s.voice.playout.handles.values()
    (chunk,) = handle.chunks
    assert chunk.text == greeting["text"] and chunk.queued_at == 1000.0  # the deadline runs on the call's clock
    assert current_call() == UUID  # the call's log lines carry its id from here on
    s.group.kill()


def test_a_connection_for_a_finished_call_is_refused_by_its_own_id_and_said(tmp_path, caplog):
    from tests.call.test_session_routing_mutants import Store

    caplog.set_level("INFO", logger="agent.call.session")

    class FinishedOnlyThisOne(Store):
        def is_finished(self, call_id: str) -> bool:
            return call_id == UUID

    s = make(tmp_path, store=FinishedOnlyThisOne())
    s.run()
    assert s.conn.lines() == ["connect", "exit"]
    assert f"call {UUID}: a connection for a finished call; refused" in [r.getMessage() for r in caplog.records]


def test_a_call_that_ends_with_no_hangup_cause_stores_none_not_an_empty_cause(tmp_path):
    s = started(tmp_path)
    s.group.kill()
    s._teardown()
    (end,) = s.deps.store.ends()
    assert end["end_reason"] == "failed" and end["hangup_cause"] is None
