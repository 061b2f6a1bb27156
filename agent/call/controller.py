"""The outbound ESL server: FreeSWITCH's `socket 127.0.0.1:8084 async full` lands here (freeswitch.md §1.3).

One greenlet per call, each running a CallSession. Over capacity the call gets `connect` + `exit`, so FreeSWITCH
continues with the dialplan actions after `socket` — the human queue — instead of a caller left in silence.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import gevent
from gevent.server import StreamServer

from agent.call.session import CallDeps, CallSession
from agent.esl.connection import EslConnection
from agent.esl.errors import EslError

log = logging.getLogger(__name__)

THREADPOOL_SIZE = 64  # blocking engine calls (TTS, LLM) run here; one per active synthesis, not per call


class Controller:
    def __init__(self, deps: CallDeps, listen: tuple[str, int] | None = None):
        self.deps = deps
        self.cfg = deps.cfg.controller
        self.active = 0
        self.rejected = 0
        self.server = StreamServer(listen or self.cfg.listen, self._handle)

    @property
    def port(self) -> int:
        return self.server.server_port

    def _handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = EslConnection(sock, reply_timeout=self.cfg.esl_reply_timeout_s)
        conn.start()
        if self.active >= self.cfg.max_calls:
            self.rejected += 1
            log.warning("at capacity (%d calls): returning the call to the dialplan", self.active)
            try:
                conn.send("connect")
                conn.command("exit")
            except EslError:
                pass
            conn.close()
            return
        self.active += 1
        try:
            CallSession(conn, self.deps).run()
        finally:
            self.active -= 1

    def serve_forever(self) -> None:
        gevent.get_hub().threadpool.maxsize = THREADPOOL_SIZE
        log.info("ESL controller listening on %s:%d", *self.server.address[:2])
        self.server.serve_forever()


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
            self.controller.server.start()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.controller.server.serve_forever()  # already started: just waits until stop()

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

    def stop(self, timeout: float = 10.0) -> None:
        if self.controller is not None and self._loop is not None:
            self._loop.run_callback_threadsafe(self.controller.server.stop, 5)
        self._thread.join(timeout)
