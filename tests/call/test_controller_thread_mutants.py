"""The controller on its own thread and gevent hub (how the demo, the benchmarks and the call tests run it): it
starts or says why not, work handed to it runs on its hub, a drain ends the thread once the calls are over, and
stop ends it with calls still up."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import gevent
import pytest
from gevent.event import Event as GEvent

from agent.call import controller as controller_mod
from agent.call.channel import ChannelInfo
from agent.call.controller import THREADPOOL_SIZE, ControllerThread
from agent.call.session import CallDeps
from agent.config import parse_config

SESSIONS: list[ThreadSession] = []


class ThreadSession:
    """A call that lasts until it is told to end (on the controller's hub, through call_soon)."""

    def __init__(self, conn: Any, deps: Any) -> None:
        self.done = GEvent()
        self.thread = threading.get_ident()
        self.channel = ChannelInfo(uuid=f"call-{len(SESSIONS) + 1}")
        self.state = "active"
        self.escalated: list[str] = []
        SESSIONS.append(self)

    def run(self) -> None:
        self.done.wait(30)

    def escalate(self, reason: str) -> None:
        self.escalated.append(reason)
        self.done.set()


@pytest.fixture(autouse=True)
def thread_sessions(monkeypatch):
    SESSIONS.clear()
    monkeypatch.setattr(controller_mod, "CallSession", ThreadSession)


def deps(**controller: Any) -> CallDeps:
    cfg = parse_config({"controller": {"max_calls": 5, **controller}})
    return CallDeps(cfg=cfg, policy=None, speaker=None, prompts=None, store=None)  # type: ignore[arg-type]


def wait_for(cond, limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.005)


def on_hub(t: ControllerThread, fn) -> Any:
    """Runs fn on the controller's hub and returns its result to this thread."""
    box: list[Any] = []
    done = threading.Event()
    t.call_soon(lambda: (box.append(fn()), done.set()))
    assert done.wait(5)
    return box[0]


def test_it_listens_on_loopback_by_default_and_serves_calls_on_its_own_thread(caplog):
    caplog.set_level(logging.INFO, logger=controller_mod.__name__)
    t = ControllerThread(deps()).start()
    try:
        assert t.listen == ("127.0.0.1", 0) and t.port != 0
        assert t._thread.name == "esl-controller" and t._thread.daemon
        sock = socket.create_connection(("127.0.0.1", t.port), timeout=2)
        wait_for(lambda: len(SESSIONS) == 1)
        assert SESSIONS[0].thread == t._thread.ident != threading.get_ident()
        assert on_hub(t, lambda: (threading.get_ident(), gevent.get_hub().threadpool.maxsize)) == \
            (t._thread.ident, THREADPOOL_SIZE)
        assert on_hub(t, lambda: t.controller.active) == 1
        started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ESL controller listening")]
        assert started == [f"ESL controller listening on 127.0.0.1:{t.port} (max 5 calls)"]  # started once
        sock.close()
    finally:
        t.stop()
    assert not t._thread.is_alive()


def test_call_soon_passes_its_arguments():
    t = ControllerThread(deps()).start()
    got: list[tuple[int, str]] = []
    done = threading.Event()
    t.call_soon(lambda a, b: (got.append((a, b)), done.set()), 7, "x")
    assert done.wait(5) and got == [(7, "x")]
    t.stop()


def test_a_drain_ends_the_thread_once_the_live_call_is_over():
    t = ControllerThread(deps()).start()
    sock = socket.create_connection(("127.0.0.1", t.port), timeout=2)
    wait_for(lambda: len(SESSIONS) == 1)
    t.drain(timeout_s=30)
    wait_for(lambda: on_hub(t, lambda: t.controller.draining))
    assert not t.join(0.1)  # the call is still up
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", t.port), timeout=2)
    t.call_soon(SESSIONS[0].done.set)
    assert t.join(5)
    assert SESSIONS[0].escalated == []  # ended by itself, not handed over
    sock.close()


def test_a_drain_with_a_timeout_hands_the_call_still_up_to_a_human():
    t = ControllerThread(deps()).start()
    sock = socket.create_connection(("127.0.0.1", t.port), timeout=2)
    wait_for(lambda: len(SESSIONS) == 1)
    t.drain(0.05)
    assert t.join(5)
    assert SESSIONS[0].escalated == ["agent_draining"]
    sock.close()


def test_stop_ends_the_thread_with_a_call_still_up():
    t = ControllerThread(deps()).start()
    sock = socket.create_connection(("127.0.0.1", t.port), timeout=2)
    wait_for(lambda: len(SESSIONS) == 1)
    t.stop(timeout=5)
    assert not t._thread.is_alive() and t.join(0)
    sock.close()


def test_a_port_in_use_fails_the_start_with_the_cause():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        t = ControllerThread(deps(), listen=("127.0.0.1", taken.getsockname()[1]))
        with pytest.raises(RuntimeError, match="^controller failed to start: ") as err:
            t.start(timeout=5)
        assert isinstance(err.value.__cause__, OSError)
        assert t.join(5)  # the thread ended; it never serves
    finally:
        taken.close()


def test_a_controller_that_never_becomes_ready_fails_the_start_in_time(monkeypatch):
    release = threading.Event()

    class Stuck:
        def __init__(self, deps: CallDeps, listen: tuple[str, int]) -> None:
            pass

        def start(self) -> None:
            while not release.is_set():
                gevent.sleep(0.01)
            raise RuntimeError("released")

    monkeypatch.setattr(controller_mod, "Controller", Stuck)
    t = ControllerThread(deps())
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="^controller did not start$"):
        t.start(timeout=0.2)
    assert time.monotonic() - began < 4
    release.set()
    assert t.join(5)


def test_stop_gives_up_after_its_timeout_when_the_thread_does_not_end(monkeypatch):
    release = threading.Event()
    stops: list[int] = []

    class Deaf:  # started, but its stop is not heard
        def __init__(self, deps: CallDeps, listen: tuple[str, int]) -> None:
            pass

        def start(self) -> None:
            pass

        def serve_forever(self) -> None:
            while not release.is_set():
                gevent.sleep(0.01)

        def stop(self) -> None:
            stops.append(threading.get_ident())

    monkeypatch.setattr(controller_mod, "Controller", Deaf)
    t = ControllerThread(deps()).start()
    began = time.monotonic()
    t.stop(timeout=0.2)
    assert time.monotonic() - began < 4 and t._thread.is_alive()
    wait_for(lambda: stops == [t._thread.ident])  # asked once, on the controller's own hub
    release.set()
    assert t.join(5)


def test_stop_while_the_controller_is_still_being_built_only_waits(monkeypatch):
    release = threading.Event()

    class Slow:
        def __init__(self, deps: CallDeps, listen: tuple[str, int]) -> None:
            while not release.is_set():
                gevent.sleep(0.01)
            raise RuntimeError("released")

    monkeypatch.setattr(controller_mod, "Controller", Slow)
    t = ControllerThread(deps())
    with pytest.raises(RuntimeError, match="^controller did not start$"):
        t.start(timeout=0.1)
    t.stop(timeout=0.1)  # nothing to ask to stop yet: it waits, and says nothing went wrong
    assert t._thread.is_alive()
    release.set()
    assert t.join(5)


def test_stop_before_start_and_stop_twice_are_harmless():
    t = ControllerThread(deps())
    t.stop(timeout=0.1)
    t.start()
    t.stop()
    t.stop(timeout=0.1)
    assert not t._thread.is_alive()
