"""The outbound ESL server: FreeSWITCH's `socket 127.0.0.1:8084|127.0.0.1:8085 async full` lands here (§1.3).

One greenlet per call, each running a CallSession. FreeSWITCH tries the next host of its `socket` list only when
the TCP connect fails (`connect` + `exit` sends the caller on to the dialplan's human queue instead), so a host
that is full or draining closes its listening socket: the next connect is refused by the kernel and FreeSWITCH
moves on to a host with room. The socket is reopened as soon as a call ends below capacity.

Draining (SIGTERM, a rolling update): the listener closes, `ready` turns false at once, live calls finish; after
`drain_timeout_s` the calls still up are handed to the human queue, then the server stops.
"""

from __future__ import annotations

import errno
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import Event as GEvent

from agent.call.session import CallDeps, CallSession
from agent.esl.connection import EslConnection
from agent.ops.logs import bind_call_lazy

log = logging.getLogger(__name__)

THREADPOOL_SIZE = 64  # blocking engine calls (TTS, LLM) run here; one per active synthesis, not per call
BACKLOG = 16
REOPEN_RETRY_S = 1.0  # another process took the port while it was closed: try again this often
ESCALATE_GRACE_S = 20.0  # after the drain timeout, time for the hand-offs to humans to finish


@dataclass
class LiveCall:
    """What the controller knows about one connection, for `/status`."""

    started: float
    session: CallSession | None = None
    overflow: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Controller:
    def __init__(self, deps: CallDeps, listen: tuple[str, int] | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.deps = deps
        self.cfg = deps.cfg.controller
        self.address: tuple[str, int] = listen or self.cfg.listen
        self.clock = clock
        self.active = 0
        self.rejected = 0  # times the listener closed at capacity (each sends the next callers to another host)
        self.overflow = 0  # connections already queued in the kernel when the listener closed: served anyway
        self.calls: dict[int, LiveCall] = {}
        self.draining = False
        self.started = False
        self._listener: gsocket.socket | None = None
        self._ids = itertools.count(1)
        self._reopen: gevent.Greenlet | None = None
        self._accepting = GEvent()
        self._drained = GEvent()
        self._done = GEvent()
        self._accept_loop: gevent.Greenlet | None = None

    # state, read by the ops HTTP thread too (plain attribute reads) ---------------------------------

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def accepting(self) -> bool:
        return self._listener is not None

    @property
    def ready(self) -> bool:
        """Readiness for a load balancer or Kubernetes: false from the first moment of a drain."""
        return self.started and not self.draining and not self._done.is_set()

    # listening socket ------------------------------------------------------------------------------

    def _open_listener(self) -> bool:
        if self._listener is not None or self._done.is_set():
            return True
        sock = gsocket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self.address)
        except OSError:
            sock.close()
            raise
        sock.listen(BACKLOG)
        self.address = (self.address[0], sock.getsockname()[1])  # port 0 → keep the one the kernel chose
        self._listener = sock
        self._accepting.set()
        return True

    def _close_listener(self, why: str) -> None:
        sock, self._listener = self._listener, None
        if sock is None:
            return
        self._accepting.clear()
        # Connections the kernel already completed would be reset by close() and FreeSWITCH would then send
        # those callers to humans (the connect succeeded): serve them instead, even a little over capacity.
        sock.settimeout(0.0)
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                break
            self.overflow += 1
            self._start_call(conn, overflow=True)
        sock.close()
        log.info("stopped accepting calls (%s; %d live): new connections are refused", why, self.active)

    def _reopen_soon(self) -> None:
        """Below capacity again: listen, retrying if the port is briefly held by someone else."""
        if self._reopen is not None or self.draining or self._done.is_set():
            return

        def reopen() -> None:
            try:
                while not (self.draining or self._done.is_set()) and self._listener is None:
                    if self.active >= self.cfg.max_calls:
                        return
                    try:
                        self._open_listener()
                        log.info("accepting calls again on %s:%d (%d live)", *self.address[:2], self.active)
                        return
                    except OSError as exc:
                        log.error("cannot listen on %s:%d again: %s", *self.address[:2], exc)
                        gevent.sleep(REOPEN_RETRY_S)
            finally:
                self._reopen = None

        self._reopen = gevent.spawn(reopen)

    def _accept_forever(self) -> None:
        while not self._done.is_set():
            sock = self._listener
            if sock is None:
                self._accepting.wait(1.0)
                continue
            try:
                conn, _ = sock.accept()
            except OSError as exc:  # closed under us by a drain or a stop
                if exc.errno not in (errno.EBADF, errno.EINVAL, None) and self._listener is sock:
                    log.warning("accept failed: %s", exc)
                    gevent.sleep(0.1)
                continue
            self._start_call(conn)
            if self.active >= self.cfg.max_calls and self._listener is not None:
                self.rejected += 1
                self._close_listener(f"at capacity, {self.cfg.max_calls} calls")

    # calls -----------------------------------------------------------------------------------------

    def _start_call(self, sock: socket.socket, *, overflow: bool = False) -> None:
        call_id = next(self._ids)
        self.calls[call_id] = LiveCall(started=self.clock(), overflow=overflow)
        self.active += 1
        gevent.spawn(self._run_call, call_id, sock)

    def _run_call(self, call_id: int, sock: socket.socket) -> None:
        live = self.calls[call_id]
        # Every line this call's greenlets log carries the channel uuid once `connect` has answered.
        bind_call_lazy(lambda: live.session.channel.uuid
                       if live.session is not None and live.session.channel is not None else None)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = EslConnection(sock, reply_timeout=self.cfg.esl_reply_timeout_s)
            conn.start()
            session = CallSession(conn, self.deps)
            live.session = session
            session.run()
        except Exception:  # noqa: BLE001 - one connection's failure must not reach the server
            log.exception("connection failed before the call could start")
        finally:
            self.calls.pop(call_id, None)
            self.active -= 1
            if self.draining:
                if self.active == 0:
                    self._drained.set()
            elif self._listener is None and self.active < self.cfg.max_calls:
                self._reopen_soon()

    # lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Binds and starts accepting (on the current hub); returns at once."""
        self._open_listener()
        self.started = True
        self._accept_loop = gevent.spawn(self._accept_forever)
        log.info("ESL controller listening on %s:%d (max %d calls)", *self.address[:2], self.cfg.max_calls)

    def serve_forever(self) -> None:
        gevent.get_hub().threadpool.maxsize = THREADPOOL_SIZE
        if not self.started:
            self.start()
        self._done.wait()

    def drain(self, timeout_s: float | None = None) -> None:
        """No new calls from now on; live calls finish; then the server stops (bounded by the drain timeout)."""
        if self.draining or self._done.is_set():
            return
        self.draining = True
        self._close_listener("draining")
        log.info("draining: %d live calls to finish", self.active)
        if self.active == 0:
            self._drained.set()
        gevent.spawn(self._finish_drain, self.cfg.drain_timeout_s if timeout_s is None else timeout_s)

    def _finish_drain(self, timeout_s: float) -> None:
        if not self._drained.wait(timeout_s):
            left = [c.session for c in list(self.calls.values()) if c.session is not None]
            log.warning("drain timeout after %.0f s: handing %d calls to the human queue", timeout_s, len(left))
            for session in left:
                try:
                    session.escalate("agent_draining")
                except Exception:  # noqa: BLE001 - the others must still be handed over
                    log.exception("hand-off at drain timeout failed")
            self._drained.wait(ESCALATE_GRACE_S)
        log.info("drained: stopping (%d calls still connected)", self.active)
        self.stop()

    def stop(self) -> None:
        """Stops at once: no listener, no accept loop; live call greenlets are left to end on their own."""
        self._close_listener("stopping")
        self._done.set()
        self._accepting.set()
        if self._accept_loop is not None and self._accept_loop is not gevent.getcurrent():
            self._accept_loop.kill(block=False)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        """State for `/status`; safe to call from another thread (copies before reading)."""
        from agent.ops.status import describe_call  # ops formats; the controller only keeps the objects

        now = self.clock()
        for _ in range(5):
            try:
                calls = list(self.calls.values())
                break
            except RuntimeError:  # the dict changed size while another thread copied it
                continue
        else:
            calls = []
        return {
            "listen": f"{self.address[0]}:{self.address[1]}", "ready": self.ready, "accepting": self.accepting,
            "draining": self.draining, "active": self.active, "max_calls": self.cfg.max_calls,
            "closed_at_capacity": self.rejected, "overflow": self.overflow,
            "calls": [describe_call(c.session, now - c.started, c.overflow) for c in calls],
        }


class ControllerThread:
    """Runs a Controller on its own gevent hub in a background thread (tests, demo, benchmarks)."""

    def __init__(self, deps: CallDeps, listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.deps = deps
        self.listen = listen
        self.controller: Controller | None = None
        self._ready = threading.Event()
        self._loop: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="esl-controller", daemon=True)

    def _run(self) -> None:
        try:
            hub = gevent.get_hub()
            hub.threadpool.maxsize = THREADPOOL_SIZE
            self._loop = hub.loop
            self.controller = Controller(self.deps, self.listen)
            self.controller.start()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.controller.serve_forever()  # already started: waits until stopped or drained

    def start(self, timeout: float = 10.0) -> ControllerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("controller did not start")
        if self._error is not None:
            raise RuntimeError(f"controller failed to start: {self._error}") from self._error
        return self

    @property
    def port(self) -> int:
        assert self.controller is not None
        return self.controller.port

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Runs `fn(*args)` on the controller's hub (thread-safe)."""
        assert self._loop is not None
        self._loop.run_callback_threadsafe(fn, *args)

    def drain(self, timeout_s: float | None = None) -> None:
        assert self.controller is not None
        self.call_soon(self.controller.drain, timeout_s)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        if self.controller is not None and self._loop is not None and self._thread.is_alive():
            self._loop.run_callback_threadsafe(self.controller.stop)
        if self._thread.ident is not None:  # a cleanup after a failed set-up may stop one never started
            self._thread.join(timeout)
