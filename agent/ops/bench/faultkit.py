"""Tools of the fault suite: a TCP proxy that can reset, freeze or refuse what passes through it, a fake
OpenAI-compatible server that hangs or errors, and what a simulated caller's timeline says about silence.

The proxy sits between the controller and the worker (the fork) or the database, so a fault is injected on the
wire, the way a broken network or a stopped server shows itself, without touching the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.sim import CallLog

CHUNK = 65536
FROZEN_POLL_S = 0.05


class _Pair:
    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter, frozen: bool):
        self.down, self.up, self.frozen = down, up, frozen


def _rst(writer: asyncio.StreamWriter) -> None:
    """Closes with a TCP RST (SO_LINGER 0), as a crashed host or a middlebox reset does."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Proxy:
    """127.0.0.1:<port> → a TCP (host, port) or a unix socket path, on its own thread and event loop.

    Modes for new connections: "pass"; "refuse" (reset at once: the server is down); "hang" (accepted, nothing
    forwarded: the server is stopped with its sockets open). `freeze()` stops forwarding on the connections open
    now (half-open); `reset()` resets them.
    """

    def __init__(self, target: tuple[str, int] | Path):
        self.target = target
        self.mode = "pass"
        self.port = 0
        self._pairs: set[_Pair] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def _call(self, fn: object) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()  # type: ignore[operator]
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def set_mode(self, mode: str) -> None:
        self.mode = mode

    def freeze(self) -> None:
        def run() -> None:
            for pair in self._pairs:
                pair.frozen = True
        self._call(run)

    def thaw(self) -> None:
        def run() -> None:
            for pair in self._pairs:
                pair.frozen = False
        self._call(run)

    def reset(self) -> None:
        def run() -> None:
            for pair in list(self._pairs):
                _rst(pair.down)
                _rst(pair.up)
            self._pairs.clear()
        self._call(run)

    def close(self) -> None:
        self.reset()
        self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            _rst(writer)
            return
        try:
            if isinstance(self.target, Path):
                up_r, up_w = await asyncio.open_unix_connection(str(self.target))
            else:
                up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        pair = _Pair(writer, up_w, frozen=self.mode == "hang")
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_w, pair), self._pipe(up_r, writer, pair))
        finally:
            self._pairs.discard(pair)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair: _Pair) -> None:
        try:
            while True:
                while pair.frozen:  # read nothing: the sender's buffers fill, as with a hung peer
                    await asyncio.sleep(FROZEN_POLL_S)
                data = await src.read(CHUNK)
                if not data:
                    break
                while pair.frozen:  # frozen while this read was pending: hold what it got
                    await asyncio.sleep(FROZEN_POLL_S)
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()


class FakeLlm:
    """An OpenAI-compatible endpoint that never answers ("hang") or answers HTTP 500 ("error")."""

    def __init__(self, mode: str):
        self.mode = mode
        self.requests = 0
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                if outer.mode == "hang":
                    outer._stop.wait(600)
                    return
                body = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}}).encode()
                with contextlib.suppress(OSError):
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name="fake-llm", daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def end_of_agent(log: CallLog) -> float | None:
    """When the call left the agent: its transfer, else its end."""
    if log.transfer is not None:
        return log.transfer.t
    return log.t_end


def _audible_until(t: float, spans: list[tuple[float, float]]) -> float:
    """The end of the audio playing at `t` (and of any playback that follows it without a gap); `t` if none."""
    moved = True
    while moved:
        moved = False
        for a, b in spans:
            if a <= t < b:
                t, moved = b, True
    return t


def silences(log: CallLog) -> list[tuple[float, float]]:
    """(start, seconds) of each wait for the agent: from the answer, and from each caller utterance's last voiced
    frame, once the audio playing then has ended, to the next playback start (or the transfer, or the end of the
    call when nothing came)."""
    if log.answered_at is None:
        return []
    end = end_of_agent(log) or time.monotonic()
    spans = [(h.t_start, h.t_stop if h.t_stop is not None else end) for h in log.heard]
    # The answer waits for the first playback; an utterance waits for whatever plays after the audio it
    # ended over (a caller who talks over the greeting waits from the greeting's end).
    starts = [log.answered_at] + [_audible_until(max(u.t_last_voiced, log.answered_at), spans)
                                  for u in log.utterances if u.t_last_voiced is not None]
    heard = sorted(h.t_start for h in log.heard)
    out = []
    for s in starts:
        if s >= end:
            continue
        nxt = next((t for t in heard if t >= s), None)
        stop = min(end, nxt) if nxt is not None else end
        out.append((s, max(0.0, stop - s)))
    return out


def longest_silence(log: CallLog) -> float:
    return max((sec for _, sec in silences(log)), default=0.0)
