"""The worker's server side without a network: the metadata handshake, refusals (what is sent, the close code,
what is counted), the connection cap, the idle close, the fork token, the quiet websockets logger, and the
thread wrapper. The connection is an in-process fake that speaks the websockets API the worker uses."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.protocol import State

from agent.engines.asr.fake import FakeAsr
from agent.worker import server as worker_server
from agent.worker.ratelimit import RateLimitedLog
from agent.worker.server import WatchedConnection, Worker, WorkerThread, fork_token
from tests.worker.fork_fakes import FakeConn, make_cfg, meta


@pytest.fixture
def worker(tmp_path, monkeypatch):
    monkeypatch.delenv("CALLAGENT_FORK_SECRET", raising=False)
    # The module's log limiter is shared: a fresh one per test, so earlier tests' lines do not suppress these.
    monkeypatch.setattr(worker_server, "limited", RateLimitedLog(worker_server.log, per_s=1.0, burst=5))
    made: list[Worker] = []

    def make(**cfg: object) -> Worker:
        w = Worker(make_cfg(tmp_path, **cfg), FakeAsr(text="네"))
        w._executor = ThreadPoolExecutor(1)
        made.append(w)
        return w

    yield make
    for w in made:
        assert w._executor is not None
        w._executor.shutdown(wait=False)


class SessionRecorder:
    """Stands in for CallSession: records how the worker opened the call."""

    def __init__(self, ws: object, meta: object, **kw: object):
        self.ws, self.meta, self.kw = ws, meta, kw


def open_call(w: Worker, conn: FakeConn, monkeypatch) -> SessionRecorder | None:
    monkeypatch.setattr(worker_server, "CallSession", SessionRecorder)
    return asyncio.run(w._open(WatchedConnection(conn)))  # type: ignore[arg-type,return-value]


def refusal(conn: FakeConn) -> str:
    (frame,) = conn.sent
    data = json.loads(frame)
    assert data["type"] == "error" and conn.closed == (1008, "bad metadata")
    return data["data"]["reason"]


# --- the metadata handshake -------------------------------------------------------------------------------

def test_the_session_is_opened_with_the_metadata_and_the_configured_limits(worker, monkeypatch, tmp_path):
    (tmp_path / "ecommerce.yaml").write_text("industry: ecommerce\nterms: [로켓배송]\n", encoding="utf-8")
    w = worker(asr_timeout_s=3.5, allow_text_injection=True, max_pending_utterances=7)
    conn = FakeConn([meta(industry="ecommerce", hotwords=["반품"])])
    session = open_call(w, conn, monkeypatch)
    assert session is not None and conn.sent == [] and conn.closed is None
    assert session.meta.call_id == "call-1" and session.meta.industry == "ecommerce"
    kw = session.kw
    assert (kw["asr_timeout_s"], kw["allow_injection"], kw["max_pending_utterances"]) == (3.5, True, 7)
    assert kw["engine"] is w.engine and kw["executor"] is w._executor and kw["stats"] is w._stats
    assert kw["vad_cfg"] is w.cfg.worker.vad
    assert "로켓배송" in kw["hotwords"] and "반품" in kw["hotwords"]


def test_the_url_path_names_the_call_when_the_metadata_does_not(worker, monkeypatch):
    session = open_call(worker(), FakeConn(['{"rate":8000}'], path="/uuid-77?stereo=1"), monkeypatch)
    assert session is not None and session.meta.call_id == "uuid-77" and session.meta.rate == 8000


def test_without_a_request_path_a_call_id_is_required(worker, monkeypatch):
    w = worker()
    conn = FakeConn(['{"rate":8000}'], path=None)
    assert open_call(w, conn, monkeypatch) is None
    assert refusal(conn) == "metadata lacks 'call_id' and the URL path carries none"
    assert w._stats.rejected == 1


def test_a_broken_hotword_file_does_not_drop_the_call(worker, monkeypatch, tmp_path):
    (tmp_path / "ecommerce.yaml").write_text("industry: [not, a, name\n", encoding="utf-8")
    session = open_call(worker(), FakeConn([meta(industry="ecommerce", hotwords=["반품"])]), monkeypatch)
    assert session is not None and session.kw["hotwords"] == ("반품",)


def test_audio_before_the_metadata_is_refused(worker, monkeypatch):
    w = worker()
    conn = FakeConn([b"\0" * 640])
    assert open_call(w, conn, monkeypatch) is None
    assert refusal(conn) == "the first frame must be the metadata text (with 'rate'), got audio"
    assert w._stats.rejected == 1


def test_bad_metadata_is_refused_with_the_parser_s_reason(worker, monkeypatch):
    w = worker()
    conn = FakeConn(['{"call_id":"a","rate":44100}'])
    assert open_call(w, conn, monkeypatch) is None
    assert refusal(conn) == "unsupported sample rate 44100; only 8000 and 16000 are accepted"


def test_no_metadata_in_time_is_refused(worker, monkeypatch):
    class Silent(FakeConn):
        async def recv(self) -> object:
            await asyncio.Event().wait()

    monkeypatch.setattr(worker_server, "METADATA_TIMEOUT_S", 0.01)
    w = worker()
    conn = Silent([])
    assert open_call(w, conn, monkeypatch) is None
    assert refusal(conn) == "no metadata within 0.01 s" and w._stats.rejected == 1


def test_a_peer_gone_before_its_metadata_is_not_counted_as_refused(worker, monkeypatch):
    w = worker()
    conn = FakeConn([])
    assert open_call(w, conn, monkeypatch) is None
    assert conn.sent == [] and conn.closed is None and w._stats.rejected == 0


def test_a_refusal_to_a_peer_already_gone_is_still_counted(worker):
    w = worker()
    conn = FakeConn([], send_fails=True)
    asyncio.run(w._reject(conn, "whatever"))  # type: ignore[arg-type]
    assert w._stats.rejected == 1 and conn.closed is None


# --- the fork token ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("token, accepted", [
    ("right", True), ("", False), ("0" * 32, False), (12345, False), (None, False)])
def test_with_a_secret_only_the_call_s_token_opens_the_fork(worker, monkeypatch, token, accepted):
    monkeypatch.setenv("CALLAGENT_FORK_SECRET", "s3cret")
    w = worker()
    fields: dict[str, object] = {} if token is None else {
        "token": fork_token("s3cret", "call-1") if token == "right" else token}
    conn = FakeConn([meta(**fields)])
    if isinstance(token, int):
        monkeypatch.setattr(worker_server.proto, "parse_metadata",
                            lambda text, fallback_call_id: worker_server.proto.ForkMetadata("call-1", 16000))
    session = open_call(w, conn, monkeypatch)
    assert (session is not None) is accepted
    assert w.bad_tokens == (0 if accepted else 1) and w.stats()["bad_tokens"] == w.bad_tokens
    if not accepted:
        assert refusal(conn) == "call call-1: fork token missing or wrong"


def test_without_the_secret_any_token_is_accepted(worker, monkeypatch):
    session = open_call(worker(), FakeConn([meta(token="anything")]), monkeypatch)
    assert session is not None


def test_the_secret_is_read_from_the_configured_variable(worker, monkeypatch):
    monkeypatch.setenv("OTHER_SECRET", "k")
    w = worker(fork_secret_env="OTHER_SECRET")
    assert open_call(w, FakeConn([meta(token=fork_token("k", "call-1"))]), monkeypatch) is not None
    assert open_call(w, FakeConn([meta(token=fork_token("s3cret", "call-1"))]), monkeypatch) is None
    w2 = worker(fork_secret_env="")
    assert open_call(w2, FakeConn([meta(token="x")]), monkeypatch) is not None


# --- the connection cap and a whole (short) call ----------------------------------------------------------

def test_over_the_cap_a_fork_is_closed_1013_and_counted(worker):
    w = worker(max_connections=1)
    w._stats.active = 1  # one call already open
    conn = FakeConn([meta()])
    asyncio.run(w._handle(conn))  # type: ignore[arg-type]
    assert conn.closed == (1013, "over capacity") and conn.sent == []
    stats = w.stats()
    assert (stats["over_cap"], stats["connections"], stats["active"], stats["rejected"]) == (1, 1, 1, 0)


def test_at_the_cap_the_fork_is_served(worker):
    w = worker(max_connections=2)
    w._stats.active = 1
    conn = FakeConn([meta(), bytes(640), b""])  # metadata, 20 ms of audio, mod_audio_fork's empty frame
    asyncio.run(w._handle(conn))  # type: ignore[arg-type]
    stats = w.stats()
    assert conn.closed is None and (stats["over_cap"], stats["connections"], stats["active"]) == (0, 1, 1)
    assert (stats["messages"], stats["frames"]) == (1, 1)  # the call's session ran the audio


def test_a_refused_handshake_still_frees_its_place(worker):
    w = worker()
    conn = FakeConn([b"\1\2"])
    asyncio.run(w._handle(conn))  # type: ignore[arg-type]
    stats = w.stats()
    assert (stats["connections"], stats["active"], stats["rejected"]) == (1, 0, 1)


def test_the_counters_snapshot_has_the_server_s_own_counts(worker):
    w = worker()
    w.over_cap, w.idle_closed, w.bad_tokens = 3, 4, 5
    stats = w.stats()
    assert (stats["over_cap"], stats["idle_closed"], stats["bad_tokens"]) == (3, 4, 5)
    assert stats["log_suppressed"] == worker_server.limited.suppressed_total
    assert stats["connections"] == 0


# --- the idle close ---------------------------------------------------------------------------------------

class IdleScript:
    """A watched connection whose idle time is scripted, one value per look."""

    def __init__(self, idle: list[float]):
        self.idle = deque(idle)
        self.closed: tuple[int, str] | None = None

    def idle_for(self, _now: float) -> float:
        return self.idle.popleft() if len(self.idle) > 1 else self.idle[0]

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def run_idle(w: Worker, ws: IdleScript, monkeypatch) -> list[float]:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) > 50:
            raise AssertionError("never closed")
        await real_sleep(0)

    monkeypatch.setattr(worker_server.asyncio, "sleep", sleep)
    asyncio.run(w._close_when_idle(ws))  # type: ignore[arg-type]
    return slept


def test_a_fork_quiet_for_the_idle_timeout_is_closed_1001(worker, monkeypatch):
    w = worker(idle_timeout_s=10.0)
    ws = IdleScript([3.0, 9.99, 4.0, 10.0, 10.0])  # (look before sleeping, look after) pairs
    slept = run_idle(w, ws, monkeypatch)
    # It sleeps until the timeout could be reached, never a busy loop: 10 − 3 s, then 10 − 4 s.
    assert [round(s, 6) for s in slept] == [7.0, 6.0] and ws.closed == (1001, "idle")
    assert w.idle_closed == 1 and w.stats()["idle_closed"] == 1


def test_the_idle_check_sleeps_at_least_50_ms(worker, monkeypatch):
    w = worker(idle_timeout_s=1.0)
    ws = IdleScript([5.0, 0.5, 0.99, 1.0])
    slept = run_idle(w, ws, monkeypatch)
    assert [round(s, 6) for s in slept] == [0.05, 0.05] and ws.closed == (1001, "idle")


# --- the watched connection -------------------------------------------------------------------------------

def test_only_audio_counts_as_a_sign_of_life():
    async def main() -> tuple[float, float, float]:
        ws = WatchedConnection(FakeConn(["text", b"\0\0"]))  # type: ignore[arg-type]
        ws.last_audio = -100.0
        await ws.recv()
        after_text = ws.last_audio
        await ws.recv()
        return after_text, ws.last_audio, ws.idle_for(ws.last_audio + 2.5)

    after_text, after_audio, idle = asyncio.run(main())
    assert after_text == -100.0 and after_audio > 0 and idle == 2.5


def test_text_frames_read_by_iteration_are_no_sign_of_life_either():
    async def main() -> list[float]:
        ws = WatchedConnection(FakeConn(["a", "b", b"\0\0"]))  # type: ignore[arg-type]
        ws.last_audio = -100.0
        seen = []
        async for _ in ws:
            seen.append(ws.last_audio)
        return [*seen, ws.last_audio]

    seen = asyncio.run(main())
    assert seen[:2] == [-100.0, -100.0] and seen[2] > 0 and seen[3] >= seen[2]


def test_the_watched_connection_passes_the_rest_through():
    conn = FakeConn([], path="/p")
    ws = WatchedConnection(conn)  # type: ignore[arg-type]
    assert ws.request.path == "/p" and ws.state is State.OPEN  # type: ignore[attr-defined]


# --- subprotocol, logger, open files ------------------------------------------------------------------------

def test_the_drachtio_subprotocol_is_echoed_and_a_client_offering_none_is_served():
    from websockets.typing import Subprotocol

    assert worker_server._select_subprotocol(None, [Subprotocol("x"), Subprotocol("audio.drachtio.org")]) == \
        "audio.drachtio.org"  # type: ignore[arg-type]
    assert worker_server._select_subprotocol(None, [Subprotocol("x")]) is None  # type: ignore[arg-type]


def test_websockets_errors_become_rate_limited_one_line_warnings(caplog):
    quiet = worker_server._QuietLogger()
    with caplog.at_level(logging.DEBUG, logger="websockets.server"):
        try:
            raise OSError("connection reset")
        except OSError:
            quiet.error("opening handshake failed", exc_info=True)
        quiet.log(logging.ERROR, "handshake %s failed", "x", exc_info=ValueError("bad request line"))
        quiet.log(logging.CRITICAL, "plain")
        quiet.info("server listening on %s", "x")
        for _ in range(10):
            quiet.error("flood")
    records = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
    assert records[:4] == [
        (logging.WARNING, "opening handshake failed: OSError('connection reset')", None),
        (logging.WARNING, "handshake x failed: ValueError('bad request line')", None),
        (logging.WARNING, "plain", None),
        (logging.INFO, "server listening on x", None),
    ]
    assert len(records) == 4 + 3  # a flood of one line: the burst of 3, the rest suppressed


def test_debug_lines_are_not_built_when_debug_is_off(caplog):
    quiet = worker_server._QuietLogger()
    with caplog.at_level(logging.INFO, logger="websockets.server"):
        quiet.debug("frame %s", "x")
    assert caplog.records == []


def _limits(soft: int, hard: int):
    def getrlimit(which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return soft, hard

    return getrlimit


def test_the_open_files_limit_is_raised_to_the_hard_limit(monkeypatch):
    calls = []
    monkeypatch.setattr(resource, "getrlimit", _limits(1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda which, lim: calls.append((which, lim)))
    assert worker_server.raise_fd_limit() == 4096
    assert calls == [(resource.RLIMIT_NOFILE, (4096, 4096))]


@pytest.mark.parametrize("error", [ValueError("not allowed"), PermissionError("not permitted")])
def test_an_open_files_limit_that_cannot_be_raised_is_left(monkeypatch, error):
    def refuse(_which: int, _lim: tuple[int, int]) -> None:
        raise error

    monkeypatch.setattr(resource, "getrlimit", _limits(1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert worker_server.raise_fd_limit() == 1024
    calls = []
    monkeypatch.setattr(resource, "getrlimit", _limits(4096, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda which, lim: calls.append(lim))
    assert worker_server.raise_fd_limit() == 4096 and calls == []


# --- the thread wrapper -----------------------------------------------------------------------------------

def test_a_worker_thread_not_started_has_no_port_or_engine_and_zero_counters(tmp_path):
    t = WorkerThread(make_cfg(tmp_path))
    with pytest.raises(RuntimeError, match="not listening"):
        _ = t.port
    with pytest.raises(RuntimeError, match="no engine yet"):
        _ = t.engine
    assert t.stats()["connections"] == 0 and t.stats()["active"] == 0
    t.stop()  # nothing to stop


def test_a_given_engine_is_not_closed_and_a_built_one_is(tmp_path, monkeypatch):
    class Closing(FakeAsr):
        closed = 0

        def close(self) -> None:
            self.closed += 1

    given = Closing(text="네")
    with WorkerThread(make_cfg(tmp_path), given) as t:
        assert t.engine is given and t.port > 0
        with pytest.raises(RuntimeError, match="already started"):
            t.start()
    assert given.closed == 0
    built = Closing(text="네")
    monkeypatch.setattr(worker_server, "create_asr", lambda _cfg: built)
    with WorkerThread(make_cfg(tmp_path)) as t:
        assert t.engine is built
    assert built.closed == 1
