"""The outbound ESL server on loopback, with calls that stand in for sessions: a connection becomes a live call,
a full or draining controller closes its listening port so the kernel refuses the next connect (FreeSWITCH then
tries the next host of `socket a|b`, freeswitch.md §1.3), connections already queued are served, the port opens
again below capacity, and a drain hands the calls still up to humans at its timeout."""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import gevent
import pytest
from gevent import socket as gsocket
from gevent.event import Event as GEvent

from agent.call import controller as controller_mod
from agent.call.channel import ChannelInfo
from agent.call.controller import Controller
from agent.call.session import CallDeps
from agent.config import parse_config
from agent.ops.logs import current_call

SESSIONS: list[FakeSession] = []


class FakeSession:
    """A call that lasts until the test ends it; records what the controller asked of it."""

    fail_to_build = False  # a session that cannot even be built (a bad first reply, a broken dependency)

    def __init__(self, conn: Any, deps: Any) -> None:
        if FakeSession.fail_to_build:
            raise RuntimeError("cannot build")
        self.conn = conn
        self.deps = deps
        self.done = GEvent()
        self.escalated: list[str] = []
        self.channel = ChannelInfo(uuid=f"call-{len(SESSIONS) + 1}")
        self.state = "active"
        self.fail = False
        SESSIONS.append(self)

    def run(self) -> None:
        self.call_id_in_logs = current_call()  # what each log line of this call's greenlet carries
        self.done.wait(10)
        if self.fail:
            raise RuntimeError("session failed")

    def escalate(self, reason: str) -> None:
        self.escalated.append(reason)
        if reason == "boom":
            raise RuntimeError("x")
        self.done.set()


@pytest.fixture(autouse=True)
def fake_sessions(monkeypatch):
    SESSIONS.clear()
    FakeSession.fail_to_build = False
    monkeypatch.setattr(controller_mod, "CallSession", FakeSession)
    yield
    for s in SESSIONS:
        s.done.set()


def make(max_calls: int = 5, **kw: Any) -> Controller:
    cfg = parse_config({"controller": {"max_calls": max_calls, **kw}})
    deps = CallDeps(cfg=cfg, policy=None, speaker=None, prompts=None, store=None)  # type: ignore[arg-type]
    c = Controller(deps, ("127.0.0.1", 0), clock=lambda: 100.0)
    c.start()
    return c


def connect(c: Controller) -> gsocket.socket:
    return gsocket.create_connection(("127.0.0.1", c.port), timeout=2)


def until(cond, limit: float = 5.0) -> None:
    with gevent.Timeout(limit):
        while not cond():
            gevent.sleep(0.005)


def refused(c: Controller) -> bool:
    try:
        connect(c).close()
        return False
    except ConnectionRefusedError:
        return True


def test_a_connection_becomes_a_live_call_until_its_session_ends():
    c = make()
    assert c.port != 0 and c.accepting and c.ready and c.started
    sock = connect(c)
    until(lambda: SESSIONS and c.active == 1)
    (call,) = c.calls.values()
    assert call.session is SESSIONS[0] and not call.overflow and call.started == 100.0
    assert SESSIONS[0].deps is c.deps and SESSIONS[0].conn.reply_timeout == c.cfg.esl_reply_timeout_s
    SESSIONS[0].done.set()
    until(lambda: c.active == 0)
    assert c.calls == {}
    sock.close()
    c.stop()


def test_a_full_controller_closes_its_port_and_opens_it_again_below_capacity():
    c = make(max_calls=1)
    first = connect(c)
    until(lambda: c.active == 1 and not c.accepting)
    assert c.rejected == 1 and refused(c)
    SESSIONS[0].done.set()
    until(lambda: c.accepting)
    second = connect(c)
    until(lambda: c.active == 1 and len(SESSIONS) == 2)
    first.close()
    second.close()
    c.stop()


def test_connections_already_queued_when_the_port_closes_are_served():
    c = make(max_calls=2)
    c._accept_loop.kill()  # the kernel queues connections while nobody accepts
    socks = [connect(c) for _ in range(3)]
    gevent.sleep(0.05)
    c._close_listener("test")
    until(lambda: c.active == 3)
    assert c.overflow == 3 and all(call.overflow for call in c.calls.values())
    for s in socks:
        s.close()
    c.stop()


def test_a_session_that_fails_is_counted_out():
    c = make()
    sock = connect(c)
    until(lambda: SESSIONS)
    SESSIONS[0].fail = True
    SESSIONS[0].done.set()
    until(lambda: c.active == 0)
    assert c.calls == {} and c.accepting
    sock.close()
    c.stop()


def test_a_drain_with_no_calls_stops_at_once():
    c = make()
    c.drain(timeout_s=5)
    assert c.draining and not c.ready and not c.accepting
    assert c.wait(2) and refused(c)
    c.drain()  # a second drain changes nothing


def test_a_drain_lets_live_calls_finish_without_taking_new_ones():
    c = make()
    sock = connect(c)
    until(lambda: c.active == 1)
    c.drain(timeout_s=5)
    assert not c.wait(0.05) and refused(c)
    SESSIONS[0].done.set()
    assert c.wait(2)
    assert not c.accepting  # a call ending during a drain never reopens the port
    sock.close()


def test_at_the_drain_timeout_the_calls_still_up_go_to_humans(monkeypatch):
    monkeypatch.setattr(controller_mod, "ESCALATE_GRACE_S", 2.0)
    c = make()
    socks = [connect(c), connect(c)]
    until(lambda: c.active == 2)
    SESSIONS[0].escalated.append("")  # marks the first to fail its hand-off
    SESSIONS[0].escalate = lambda reason: (_ for _ in ()).throw(RuntimeError(reason))  # type: ignore[method-assign]
    c.drain(timeout_s=0.05)
    until(lambda: SESSIONS[1].escalated == ["agent_draining"])  # the first failing does not stop the second
    SESSIONS[0].done.set()
    assert c.wait(3)
    for s in socks:
        s.close()


def test_the_configured_drain_timeout_applies_when_none_is_given():
    c = make(drain_timeout_s=0.05)
    sock = connect(c)
    until(lambda: c.active == 1)
    c.drain()
    until(lambda: SESSIONS[0].escalated == ["agent_draining"])
    assert c.wait(3)
    sock.close()


def test_the_status_snapshot():
    c = make(max_calls=3)
    sock = connect(c)
    until(lambda: c.active == 1)
    snap = c.snapshot()
    assert snap["listen"] == f"127.0.0.1:{c.port}" and snap["ready"] and snap["accepting"]
    assert (snap["draining"], snap["active"], snap["max_calls"], snap["closed_at_capacity"], snap["overflow"]) == \
        (False, 1, 3, 0, 0)
    (call,) = snap["calls"]
    assert call["call_id"] == "call-1" and call["state"] == "active" and call["age_s"] == 0.0
    sock.close()
    c.stop()
    assert not c.ready and not c.accepting


def test_stop_closes_the_port_and_ends_the_accept_loop():
    c = make()
    c.stop()
    assert c.wait(1) and refused(c)
    gevent.sleep(0.01)
    assert c._accept_loop.dead


def test_a_drain_tells_the_operator_each_step(monkeypatch, caplog):
    monkeypatch.setattr(controller_mod, "ESCALATE_GRACE_S", 2.0)
    caplog.set_level(logging.INFO, logger=controller_mod.__name__)
    c = make()
    socks = [connect(c), connect(c)]
    until(lambda: c.active == 2)
    SESSIONS[0].escalate = lambda reason: (_ for _ in ()).throw(RuntimeError(reason))  # type: ignore[method-assign]
    caplog.clear()
    c.drain(timeout_s=0.05)
    until(lambda: SESSIONS[1].escalated == ["agent_draining"])
    SESSIONS[0].done.set()
    assert c.wait(3)
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("INFO", "stopped accepting calls (draining; 2 live): new connections are refused", False),
        ("INFO", "draining: 2 live calls to finish", False),
        ("WARNING", "drain timeout after 0 s: handing 2 calls to the human queue", False),
        ("ERROR", "hand-off at drain timeout failed", True),
        ("INFO", "drained: stopping (0 calls still connected)", False),
    ]
    for s in socks:
        s.close()


def test_a_call_that_outlives_its_hand_off_does_not_hold_the_stop(monkeypatch):
    monkeypatch.setattr(controller_mod, "ESCALATE_GRACE_S", 0.1)
    c = make()
    sock = connect(c)
    until(lambda: c.active == 1)
    SESSIONS[0].escalate = lambda reason: None  # type: ignore[method-assign]  # accepted, but the call stays up
    c.drain(timeout_s=0.05)
    assert c.wait(3) and c.active == 1
    sock.close()


def test_a_drain_after_a_stop_changes_nothing():
    c = make()
    c.stop()
    c.drain(timeout_s=5)
    assert not c.draining


def test_serve_forever_starts_a_controller_not_started_and_returns_when_it_stops():
    cfg = parse_config({"controller": {"max_calls": 5}})
    deps = CallDeps(cfg=cfg, policy=None, speaker=None, prompts=None, store=None)  # type: ignore[arg-type]
    c = Controller(deps, ("127.0.0.1", 0), clock=lambda: 100.0)
    server = gevent.spawn(c.serve_forever)
    until(lambda: c.accepting)
    sock = connect(c)
    until(lambda: c.active == 1)
    c.stop()
    server.join(2)
    assert server.dead
    sock.close()


class FlakyListener:
    """The listening socket, with accept() failing once the way a kernel can (too many open files)."""

    def __init__(self, sock: gsocket.socket, errno_: int) -> None:
        self.sock = sock
        self.errno = errno_
        self.failed = 0

    def accept(self):
        if not self.failed:
            self.failed += 1
            raise OSError(self.errno, os.strerror(self.errno))
        return self.sock.accept()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def with_flaky_accept(c: Controller, errno_: int) -> FlakyListener:
    c._accept_loop.kill()
    flaky = FlakyListener(c._listener, errno_)
    c._listener = flaky  # type: ignore[assignment]
    c._accept_loop = gevent.spawn(c._accept_forever)
    return flaky


def test_an_accept_that_fails_is_said_and_the_next_caller_is_still_served(caplog):
    caplog.set_level(logging.INFO, logger=controller_mod.__name__)
    c = make()
    flaky = with_flaky_accept(c, errno.EMFILE)
    sock = connect(c)
    until(lambda: len(SESSIONS) == 1)
    assert flaky.failed == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["accept failed: [Errno 24] Too many open files"]
    sock.close()
    c.stop()


def test_an_accept_ended_by_the_socket_going_away_is_not_a_warning(caplog):
    caplog.set_level(logging.INFO, logger=controller_mod.__name__)
    c = make()
    with_flaky_accept(c, errno.EINVAL)
    sock = connect(c)
    until(lambda: len(SESSIONS) == 1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    sock.close()
    c.stop()


def test_each_time_the_controller_fills_up_is_counted_and_said(caplog):
    caplog.set_level(logging.INFO, logger=controller_mod.__name__)
    c = make(max_calls=1)
    first = connect(c)
    until(lambda: c.rejected == 1)
    SESSIONS[0].done.set()
    until(lambda: c.accepting)
    second = connect(c)
    until(lambda: c.rejected == 2)
    closed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped accepting")]
    assert closed == ["stopped accepting calls (at capacity, 1 calls; 1 live): new connections are refused"] * 2
    first.close()
    second.close()
    c.stop()


def test_queued_connections_are_each_served_on_their_own_socket():
    c = make(max_calls=2, esl_reply_timeout_s=2.5)
    c._accept_loop.kill()
    socks = [connect(c) for _ in range(3)]
    gevent.sleep(0.05)
    c._close_listener("test")
    until(lambda: len(SESSIONS) == 3)
    callers = sorted(s.getsockname() for s in socks)
    assert sorted(s.conn._sock.getpeername() for s in SESSIONS) == callers
    assert {s.conn.reply_timeout for s in SESSIONS} == {2.5}
    for s in socks:
        s.close()
    c.stop()


def test_a_call_logs_with_its_channel_uuid_and_without_one_until_connect_answers():
    c = make()
    sock = connect(c)
    until(lambda: SESSIONS and hasattr(SESSIONS[0], "call_id_in_logs"))
    assert SESSIONS[0].call_id_in_logs == "call-1"
    orig_init = FakeSession.__init__

    def no_channel_yet(self, conn: Any, deps: Any) -> None:
        orig_init(self, conn, deps)
        self.channel = None

    FakeSession.__init__ = no_channel_yet  # type: ignore[method-assign]
    try:
        other = connect(c)
        until(lambda: len(SESSIONS) == 2 and hasattr(SESSIONS[1], "call_id_in_logs"))
    finally:
        FakeSession.__init__ = orig_init  # type: ignore[method-assign]
    assert SESSIONS[1].call_id_in_logs is None
    sock.close()
    other.close()
    c.stop()


def test_a_session_that_cannot_be_built_is_logged_with_its_traceback_and_counted_out(caplog):
    caplog.set_level(logging.INFO, logger=controller_mod.__name__)
    FakeSession.fail_to_build = True
    c = make()
    sock = connect(c)
    until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
    until(lambda: c.active == 0)
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == "connection failed before the call could start"
    assert error.exc_info is not None and str(error.exc_info[1]) == "cannot build"
    assert c.calls == {} and c.accepting
    sock.close()
    c.stop()


def test_the_snapshot_gives_up_on_a_call_table_that_keeps_changing_and_shows_overflow():
    c = make(max_calls=1)
    c._accept_loop.kill()
    socks = [connect(c) for _ in range(2)]
    gevent.sleep(0.05)
    c._close_listener("test")
    until(lambda: len(SESSIONS) == 2)
    assert [call["overflow"] for call in c.snapshot()["calls"]] == [True, True]
    tries: list[int] = []

    class Changing(dict):
        def values(self):
            tries.append(1)
            raise RuntimeError("dictionary changed size during iteration")

    real = c.calls
    c.calls = Changing(real)  # type: ignore[assignment]
    snap = c.snapshot()
    c.calls = real
    assert snap["calls"] == [] and snap["active"] == 2 and len(tries) == 5
    for s in socks:
        s.close()
    c.stop()
