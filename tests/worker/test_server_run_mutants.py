"""The worker server as an operator and FreeSWITCH see it: the log lines that explain each refusal and close, the
counters that keep counting, a peer gone mid-close, and the listening server itself over loopback (the address
it binds, the subprotocol and compression it agrees, the handshake timeout, its threads) and
`serve`, with the fake ASR engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent.engines.asr.base import AsrContext, AsrResult
from agent.engines.asr.fake import FakeAsr
from agent.worker import server as worker_server
from agent.worker.ratelimit import RateLimitedLog
from agent.worker.server import WatchedConnection, Worker, WorkerThread
from tests.worker.fork_fakes import FakeConn, make_cfg, meta

LOG = "agent.worker.server"


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch):
    # The module's log limiter is shared: a fresh one per test, so earlier tests' lines do not suppress these.
    monkeypatch.setattr(worker_server, "limited", RateLimitedLog(worker_server.log, per_s=1.0, burst=5))
    monkeypatch.delenv("CALLAGENT_FORK_SECRET", raising=False)


def lines(caplog, logger: str = LOG) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger]


def make_worker(tmp_path, **cfg: object) -> Worker:
    from concurrent.futures import ThreadPoolExecutor

    w = Worker(make_cfg(tmp_path, **cfg), FakeAsr(text="네"))
    w._executor = ThreadPoolExecutor(1)
    return w


class Hangs(FakeConn):
    """A peer that never completes a close (or a send): the worker must give up after its send timeout."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await asyncio.Event().wait()

    async def send(self, message: str) -> None:
        await asyncio.Event().wait()


class Gone(FakeConn):
    async def close(self, code: int = 1000, reason: str = "") -> None:
        raise ConnectionClosed(None, None)


# --- refusals and closes: log lines and counters ---------------------------------------------------------

def test_each_fork_over_the_cap_is_counted_and_logged_with_the_connections_open(tmp_path, caplog):
    w = make_worker(tmp_path, max_connections=1)
    w._stats.active = 1
    with caplog.at_level(logging.INFO, logger=LOG):
        asyncio.run(w._handle(FakeConn([meta()])))  # type: ignore[arg-type]
        asyncio.run(w._handle(FakeConn([meta()])))  # type: ignore[arg-type]
    assert w.over_cap == 2
    assert lines(caplog) == [(logging.WARNING, "fork refused: 1 connections open (worker.max_connections)")] * 2


@pytest.mark.parametrize("conn_class", [Gone, Hangs])
def test_a_peer_that_fails_the_over_cap_close_does_not_break_the_worker(tmp_path, monkeypatch, conn_class):
    monkeypatch.setattr(worker_server, "SEND_TIMEOUT_S", 0.01)
    w = make_worker(tmp_path, max_connections=1)
    w._stats.active = 1
    asyncio.run(w._handle(conn_class([meta()])))  # type: ignore[arg-type]
    assert w.over_cap == 1 and w._stats.active == 1


def test_a_served_fork_is_logged_when_it_connects_and_closes(tmp_path, caplog):
    w = make_worker(tmp_path)
    with caplog.at_level(logging.INFO, logger=LOG):
        asyncio.run(w._handle(FakeConn([meta(rate=8000), b""])))  # type: ignore[arg-type]
    assert lines(caplog) == [(logging.INFO, "call call-1: fork connected (8000 Hz)"),
                             (logging.INFO, "call call-1: fork closed")]


def test_each_refusal_is_counted_and_logged_with_its_reason(tmp_path, caplog):
    w = make_worker(tmp_path)
    with caplog.at_level(logging.INFO, logger=LOG):
        asyncio.run(w._reject(FakeConn([]), "first"))  # type: ignore[arg-type]
        asyncio.run(w._reject(FakeConn([]), "second"))  # type: ignore[arg-type]
    assert w._stats.rejected == 2
    assert lines(caplog) == [(logging.WARNING, "fork rejected: first"), (logging.WARNING, "fork rejected: second")]


def test_a_refusal_to_a_peer_that_stops_reading_gives_up_after_the_send_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_server, "SEND_TIMEOUT_S", 0.01)
    w = make_worker(tmp_path)
    conn = Hangs([])
    asyncio.run(w._reject(conn, "slow peer"))  # type: ignore[arg-type]
    assert w._stats.rejected == 1


def test_every_bad_token_is_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLAGENT_FORK_SECRET", "k")
    w = make_worker(tmp_path)
    for _ in range(2):
        asyncio.run(w._open(WatchedConnection(FakeConn([meta(token="wrong")]))))  # type: ignore[arg-type]
    assert w.bad_tokens == 2 and w._stats.rejected == 2


def test_a_broken_hotword_file_is_logged_for_the_call(tmp_path, caplog):
    (tmp_path / "ecommerce.yaml").write_text("industry: [not, a, name\n", encoding="utf-8")
    w = make_worker(tmp_path)
    with caplog.at_level(logging.INFO, logger=LOG):
        session = asyncio.run(w._open(WatchedConnection(FakeConn([meta(industry="ecommerce")]))))  # type: ignore[arg-type]
    assert session is not None
    ((level, text),) = lines(caplog)
    assert level == logging.ERROR and text.startswith("call call-1: hotwords not loaded: hotword file ")
    assert "ecommerce.yaml is not valid YAML" in text


def test_the_call_id_is_the_url_path_up_to_the_first_question_mark(tmp_path):
    w = make_worker(tmp_path)
    conn = FakeConn(['{"rate":16000}'], path="/XYZ-7?a=1?b=2")
    session = asyncio.run(w._open(WatchedConnection(conn)))  # type: ignore[arg-type]
    assert session is not None and session.meta.call_id == "XYZ-7"


class Quiet:
    """An idle peer for `_close_when_idle`; `close` behaves as the class under test says."""

    def __init__(self, close_error: type[BaseException] | None = None, hang: bool = False):
        self.close_error, self.hang, self.closed = close_error, hang, False

    def idle_for(self, _now: float) -> float:
        return 1e9

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        if self.hang:
            await asyncio.Event().wait()
        if self.close_error is not None:
            raise self.close_error(None, None)


@pytest.mark.parametrize("peer", [Quiet(), Quiet(close_error=ConnectionClosed), Quiet(hang=True)])
def test_an_idle_fork_is_logged_and_counted_even_when_its_close_fails(tmp_path, monkeypatch, caplog, peer):
    monkeypatch.setattr(worker_server, "SEND_TIMEOUT_S", 0.01)
    w = make_worker(tmp_path, idle_timeout_s=0.5)
    with caplog.at_level(logging.INFO, logger=LOG):
        asyncio.run(w._close_when_idle(peer))  # type: ignore[arg-type]
        asyncio.run(w._close_when_idle(peer))  # type: ignore[arg-type]
    assert peer.closed and w.idle_closed == 2
    assert lines(caplog) == [(logging.WARNING, "fork closed: no audio for 0.5 s")] * 2


def test_the_end_of_a_long_frame_is_when_the_wait_for_audio_starts(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(worker_server, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))

    async def main() -> float:
        ws = WatchedConnection(FakeConn([b"\0\0"]))  # type: ignore[arg-type]
        async for _ in ws:
            now[0] = 130.0  # the session worked on this frame for 30 s
        return ws.idle_for(131.0)

    assert asyncio.run(main()) == 1.0


# --- the listening server, over loopback --------------------------------------------------------------

def _tone(ms: int, rate: int = 16000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 720, 1100), start=1))
    return (wave / np.max(np.abs(wave)) * 12000).astype("<i2").tobytes()


class ThreadNoting(FakeAsr):
    def __init__(self) -> None:
        super().__init__(text="네")
        self.threads: list[str] = []

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        self.threads.append(threading.current_thread().name)
        return super().transcribe(pcm, sample_rate, context)


def test_a_call_over_loopback_agrees_the_subprotocol_without_compression_and_runs_asr_in_the_pool(tmp_path):
    engine = ThreadNoting()
    with WorkerThread(make_cfg(tmp_path), engine) as t:
        assert "fork-worker" in {th.name for th in threading.enumerate()}

        async def call() -> tuple[object, object, list[dict]]:
            async with connect(f"ws://127.0.0.1:{t.port}/call-1", subprotocols=["audio.drachtio.org"]) as ws:
                await ws.send(meta())
                audio = bytes(6400) + _tone(600) + bytes(32000 * 2)
                for i in range(0, len(audio), 640):
                    await ws.send(audio[i:i + 640])
                got: list[dict] = []
                async with asyncio.timeout(20):
                    while not any(m.get("type") == "transcription" for m in got):
                        got.append(json.loads(await ws.recv()))
                return ws.subprotocol, ws.response.headers.get("Sec-WebSocket-Extensions"), got

        subprotocol, extensions, got = asyncio.run(call())
    assert subprotocol == "audio.drachtio.org" and extensions is None  # offered deflate, none agreed
    assert got[-1]["data"]["text"] == "네"
    assert engine.threads and all(name.startswith("asr") for name in engine.threads)


def test_the_worker_listens_on_the_configured_address_only(tmp_path):
    with WorkerThread(make_cfg(tmp_path), FakeAsr()) as t:
        with socket.create_connection(("127.0.0.1", t.port), timeout=5):
            pass
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", t.port), timeout=5):
            pass


def test_a_connection_that_never_sends_its_handshake_is_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_server, "METADATA_TIMEOUT_S", 0.2)
    with WorkerThread(make_cfg(tmp_path), FakeAsr()) as t, \
            socket.create_connection(("127.0.0.1", t.port), timeout=8) as sock:
        # Closed by the server after its handshake timeout; websockets' own default (10 s) would outlast the
        # socket's 8 s and raise instead.
        assert sock.recv(100) == b""


def test_the_start_is_logged_and_an_unset_secret_is_warned_about(tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger=LOG):
        with WorkerThread(make_cfg(tmp_path), FakeAsr()) as t:
            port = t.port
        monkeypatch.setenv("CALLAGENT_FORK_SECRET", "k")
        with WorkerThread(make_cfg(tmp_path), FakeAsr()):
            pass
    got = lines(caplog)
    assert got[:2] == [(logging.WARNING, "fork token check is off: $CALLAGENT_FORK_SECRET is unset (development only)"),
                       (logging.INFO, f"audio-fork worker listening on 127.0.0.1:{port} (ASR engine fake)")]
    assert [text for _, text in got[2:] if "token check" in text] == []


def test_a_thread_that_does_not_stop_in_time_is_reported(tmp_path, caplog):
    t = WorkerThread(make_cfg(tmp_path), FakeAsr()).start()
    release = threading.Event()
    assert t._loop is not None
    t._loop.call_soon_threadsafe(release.wait)  # the worker's loop is stuck until the test lets it go
    with caplog.at_level(logging.INFO, logger=LOG):
        t.stop(timeout_s=0.0)
    assert (logging.WARNING, "worker thread did not stop within 0 s") in lines(caplog)
    release.set()
    assert t._thread is not None
    t._thread.join(10)
    assert not t._thread.is_alive()


# --- serve -----------------------------------------------------------------------------------------------

class Closing(FakeAsr):
    def __init__(self) -> None:
        super().__init__(text="네")
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def _serve_until_ready(cfg, engine: FakeAsr | None) -> None:
    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(worker_server.serve(cfg, engine, ready=ready))
        await asyncio.wait_for(ready.wait(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_serve_closes_the_engine_it_built_and_not_one_it_was_given(tmp_path, monkeypatch, caplog):
    built = Closing()
    monkeypatch.setattr(worker_server, "create_asr", lambda worker_cfg: built if worker_cfg.listen else None)
    monkeypatch.setattr(worker_server, "raise_fd_limit", lambda: 4242)
    with caplog.at_level(logging.INFO, logger=LOG):
        _serve_until_ready(make_cfg(tmp_path), None)
    assert built.closed == 1
    assert (logging.INFO, "open files limit: 4242") in lines(caplog)
    given = Closing()
    _serve_until_ready(make_cfg(tmp_path), given)
    assert given.closed == 0


def test_serve_exposes_the_worker_counters_on_the_metrics_address(tmp_path, monkeypatch):
    import agent.ops.metrics as metrics

    served = []
    monkeypatch.setattr(metrics, "serve_metrics", lambda collector, listen: served.append((collector, listen)))
    _serve_until_ready(make_cfg(tmp_path, metrics_listen=("127.0.0.1", 9999)), Closing())
    ((collector, listen),) = served
    assert listen == ("127.0.0.1", 9999)
    values = {f.name: f.samples[0].value for f in collector.collect() if f.name.startswith("callagent_worker_")}
    assert values["callagent_worker_connections"] == 0 and "callagent_worker_over_cap" in values
    served.clear()
    _serve_until_ready(make_cfg(tmp_path), Closing())
    assert served == []


# --- websockets' own log lines ---------------------------------------------------------------------------

def test_websockets_error_lines_come_at_most_one_in_five_seconds_after_a_burst_of_three(caplog):
    quiet = worker_server._QuietLogger()
    now = [0.0]
    quiet._limited._clock = lambda: now[0]
    with caplog.at_level(logging.DEBUG, logger="websockets.server"):
        for _ in range(5):
            quiet.error("opening handshake failed")
        now[0] = 4.9
        quiet.error("opening handshake failed")
        now[0] = 5.0
        quiet.error("opening handshake failed")
    assert len(caplog.records) == 4  # three at once, then one when a token has come back after 5 s
    assert caplog.records[-1].getMessage() == "opening handshake failed (3 similar lines suppressed)"


def test_lines_below_error_keep_their_traceback(caplog):
    quiet = worker_server._QuietLogger()
    with caplog.at_level(logging.DEBUG, logger="websockets.server"):
        try:
            raise KeyError("k")
        except KeyError:
            quiet.warning("keepalive ping failed", exc_info=True)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is not None and record.exc_info[0] is KeyError


def test_a_message_over_the_frame_limit_closes_its_fork_1009(tmp_path):
    with WorkerThread(make_cfg(tmp_path, max_frame_bytes=4096), FakeAsr()) as t:
        async def call() -> int | None:
            async with connect(f"ws://127.0.0.1:{t.port}/call-1", subprotocols=["audio.drachtio.org"]) as ws:
                await ws.send(meta())
                await ws.send(bytes(4096))  # at the limit: served
                await ws.send(bytes(4098))  # over it
                with contextlib.suppress(ConnectionClosed):
                    async with asyncio.timeout(10):
                        while True:
                            await ws.recv()
                return ws.close_code

        assert asyncio.run(call()) == 1009


# --- more of the server's wiring --------------------------------------------------------------------------

def test_the_fork_token_is_the_hmac_of_the_call_id():
    # `printf abc | openssl dgst -sha256 -hmac k`, first 32 hex characters
    assert worker_server.fork_token("k", "abc") == "342e519ce0ad6c03a36b98eeb3f1d130"
    assert worker_server.fork_token("k", "abd") != worker_server.fork_token("k", "abc")


def test_every_connection_is_counted(tmp_path):
    w = make_worker(tmp_path)
    for _ in range(3):
        asyncio.run(w._handle(FakeConn([b"\1\2"])))  # type: ignore[arg-type]
    assert w.stats()["connections"] == 3 and w.stats()["active"] == 0


class Silent(FakeConn):
    """Metadata, then no audio at all: the peer is gone without closing."""

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        while self.closed is None:
            await asyncio.sleep(0.01)
        return
        yield


def test_a_connected_fork_that_sends_no_audio_is_closed_idle(tmp_path):
    w = make_worker(tmp_path, idle_timeout_s=0.05)
    conn = Silent([meta()])
    asyncio.run(asyncio.wait_for(w._handle(conn), 10))  # type: ignore[arg-type]
    assert conn.closed == (1001, "idle") and w.idle_closed == 1 and w.stats()["active"] == 0


def test_each_call_end_may_trim_the_heap_and_a_stopped_pool_is_no_error(tmp_path):
    from agent.worker.server import HeapTrim

    trims: list[int] = []
    w = make_worker(tmp_path)
    w.heap = HeapTrim(every_s=0.0, trim=lambda: trims.append(1))
    asyncio.run(w._handle(FakeConn([b"\1\2"])))  # type: ignore[arg-type]
    asyncio.run(w._handle(FakeConn([b"\1\2"])))  # type: ignore[arg-type]
    assert w._executor is not None
    w._executor.shutdown(wait=True)  # the trims run in the pool: let them finish
    assert len(trims) == 2 and w.stats()["heap_trims"] == 2
    asyncio.run(w._handle(FakeConn([b"\1\2"])))  # type: ignore[arg-type]  # the worker is stopping: no trim, no error
    assert len(trims) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_worker_listens_on_the_configured_port_and_serves_a_client_offering_no_subprotocol(tmp_path):
    port = _free_port()
    with WorkerThread(make_cfg(tmp_path, listen=("127.0.0.1", port)), FakeAsr()) as t:
        assert t.port == port

        async def call() -> object:
            async with connect(f"ws://127.0.0.1:{port}/call-1") as ws:  # libwebsockets may offer none
                await ws.send(meta())
                await ws.send(bytes(640))
                return ws.subprotocol

        assert asyncio.run(call()) is None


def test_a_worker_that_cannot_listen_says_why(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t = WorkerThread(make_cfg(tmp_path, listen=("127.0.0.1", port)), FakeAsr())
        with pytest.raises(RuntimeError, match="^worker failed to start: .*address already in use"):
            t.start()
        with pytest.raises(RuntimeError, match="^worker thread already started$"):
            t.start()
