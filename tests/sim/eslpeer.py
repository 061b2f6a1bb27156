"""A minimal raw-socket ESL "agent" for the simulator's tests: blocking sockets, hand-rolled parsing.

Deliberately independent of both the agent's codec and the simulator's: it reads FS→client messages
by the §1.1 grammar and nothing more, and it runs in a thread so the simulator keeps its own loop.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

from agent.sim import CallLog, CallScript, FreeSwitchSim

TIMEOUT_S = 5.0
# say_text / barge_in with text synthesize the caller's voice with espeak-ng.
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@dataclass
class Message:
    """One FS→client message: outer headers, raw body bytes and, for events, the decoded inner event."""

    headers: dict[str, str]
    body: bytes
    raw: bytes
    event: dict[str, str] = field(default_factory=dict)
    event_body: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def parse_plain_event(data: bytes) -> tuple[dict[str, str], str | None, list[str]]:
    """Inner text/event-plain: URL-decoded headers (dict + raw lines) and the body after Content-Length."""
    head, sep, rest = data.partition(b"\n\n")
    lines = head.decode().split("\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(": ")
        headers[name] = unquote(value)
    body = None
    if "Content-Length" in headers:
        body = rest[:int(headers["Content-Length"])].decode()
    return headers, body, lines


class EslPeer:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.settimeout(TIMEOUT_S)
        self._buf = b""
        self.events: list[Message] = []
        self.closed = False

    def send(self, text: str | bytes) -> None:
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def _fill(self, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = self.sock.recv(65536)
        if not chunk:
            self.closed = True
            raise ConnectionError("simulator closed the socket")
        self._buf += chunk

    def read_message(self, timeout: float = TIMEOUT_S) -> Message:
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self._buf:
            self._fill(deadline)
        head, _, self._buf = self._buf.partition(b"\n\n")
        headers = {}
        for line in head.decode().split("\n"):
            name, _, value = line.partition(": ")
            headers[name] = value
        length = int(headers.get("Content-Length", "0"))
        while len(self._buf) < length:
            self._fill(deadline)
        body, self._buf = self._buf[:length], self._buf[length:]
        msg = Message(headers, body, head + b"\n\n" + body)
        if msg.content_type == "text/event-plain":
            msg.event, msg.event_body, _ = parse_plain_event(body)
        return msg

    def reply(self, cmd: str, timeout: float = TIMEOUT_S) -> Message:
        """Sends `cmd` (the blank line is added) and returns its reply; events meanwhile are kept."""
        self.send(cmd if cmd.endswith("\n\n") else cmd + "\n\n")
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(max(0.01, deadline - time.monotonic()))
            if msg.content_type in ("command/reply", "api/response"):
                return msg
            self.events.append(msg)

    def wait_event(self, match: Callable[[dict[str, str]], bool], timeout: float = TIMEOUT_S) -> Message:
        """The first stored or arriving event whose decoded headers satisfy `match`."""
        for i, msg in enumerate(self.events):
            if msg.event and match(msg.event):
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(max(0.01, deadline - time.monotonic()))
            if msg.event and match(msg.event):
                return msg
            self.events.append(msg)

    def read_until_closed(self, timeout: float = TIMEOUT_S) -> list[Message]:
        out = []
        try:
            while True:
                out.append(self.read_message(timeout))
        except ConnectionError:
            return out

    def close(self) -> None:
        self.sock.close()


def named(name: str, fields: dict[str, str] | None = None,
          **headers: str) -> Callable[[dict[str, str]], bool]:
    """Matches an event name plus headers: `fields` as written, keyword names with `_` read as `-`."""
    want = dict(fields or {}) | {k.replace("_", "-"): v for k, v in headers.items()}
    return lambda e: e.get("Event-Name") == name and all(e.get(k) == v for k, v in want.items())


class AgentServer:
    """Listens on loopback like the agent's outbound port; `serve(fn)` runs fn(peer) per connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def serve(self, handler: Callable[[EslPeer], None], calls: int = 1) -> None:
        def accept_loop() -> None:
            for _ in range(calls):
                self.sock.settimeout(TIMEOUT_S * 2)
                try:
                    conn, _ = self.sock.accept()
                except OSError as exc:
                    self.errors.append(exc)
                    return
                t = threading.Thread(target=self._run, args=(handler, EslPeer(conn)), daemon=True)
                t.start()
                self._threads.append(t)

        t = threading.Thread(target=accept_loop, daemon=True)
        t.start()
        self._threads.append(t)

    def _run(self, handler: Callable[[EslPeer], None], peer: EslPeer) -> None:
        try:
            handler(peer)
        except BaseException as exc:  # reported by join(); the test thread re-raises it
            self.errors.append(exc)
        finally:
            peer.close()

    def join(self, timeout: float = TIMEOUT_S * 3) -> None:
        for t in self._threads:
            t.join(timeout)
        self.sock.close()
        if self.errors:
            raise self.errors[0]


def run_call(agent: Callable[[EslPeer], None], script: CallScript | None = None, **sim_kwargs) -> CallLog:
    """One simulated call against `agent` (run in a thread); the agent's exceptions are re-raised."""
    server = AgentServer()
    server.serve(agent)
    sim = FreeSwitchSim(server.addr, **sim_kwargs)
    try:
        log = asyncio.run(sim.run_call(script or CallScript(steps=[{"sleep": 60}])))
    finally:
        server.join()
        sim.cleanup()
    return log


def write_tone(path: str, seconds: float, rate: int = 8000, lead_s: float = 0.0, tail_s: float = 0.0) -> str:
    """A 440 Hz tone WAV with optional leading/trailing silence (voiced region = the tone)."""
    n = int(seconds * rate)
    tone = 0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / rate)
    audio = np.concatenate([np.zeros(int(lead_s * rate)), tone, np.zeros(int(tail_s * rate))])
    sf.write(path, audio.astype(np.float32), rate)
    return path


def connect(peer: EslPeer) -> str:
    """`connect`, then returns the channel uuid from the reply block."""
    peer.send("connect\n\n")
    return unquote(peer.read_message().headers["Unique-ID"])


def subscribe(peer: EslPeer, extra: str = "PLAYBACK_START PLAYBACK_STOP") -> None:
    assert peer.reply("myevents").headers["Reply-Text"] == "+OK Events Enabled"
    if extra:
        peer.reply(f"event plain {extra}")


def events_until(peer: EslPeer, done, timeout: float = 5.0) -> list[dict[str, str]]:
    """Events in arrival order (those kept while waiting for replies first) up to the one `done` accepts."""
    out = []
    while peer.events:
        event = peer.events.pop(0).event
        if event:
            out.append(event)
            if done(event):
                return out
    deadline = time.monotonic() + timeout
    while True:
        msg = peer.read_message(max(0.01, deadline - time.monotonic()))
        if msg.event:
            out.append(msg.event)
            if done(msg.event):
                return out


def app_done(app: str):
    return lambda e: e["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == app
