"""The audio-fork worker: a WebSocket server that mod_audio_fork streams each call's audio to (freeswitch.md §3).

`serve` runs it in the current event loop; `WorkerThread` runs it on its own loop in a background thread.
No peer can take it down (docs/reliability.md): connections are capped (1013 over the cap), a fork that sends
no audio for `idle_timeout_s` is closed, a message over `max_frame_bytes` closes its fork (1009), a fork whose
token does not verify is refused (1008), and every log line a flood could repeat is rate-limited. One ASR
engine (one model) serves every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from agent.config import Config
from agent.engines.asr import hotwords
from agent.engines.asr.base import AsrEngine
from agent.engines.asr.registry import create_asr
from agent.media import fork_protocol as proto
from agent.worker.ratelimit import RateLimitedLog
from agent.worker.session import SEND_TIMEOUT_S, CallSession
from agent.worker.stats import WorkerStats

log = logging.getLogger(__name__)
limited = RateLimitedLog(log, per_s=1.0, burst=5)

METADATA_TIMEOUT_S = 10.0  # mod_audio_fork sends the metadata right after connecting
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Dead peers are found by ping; libwebsockets answers pings on its own.
PING_INTERVAL_S = 20.0
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001
TOKEN_HEX_CHARS = 32
TRIM_EVERY_S = 30.0  # at most one heap trim in this time, run when a call ends


def fork_token(secret: str, call_id: str) -> str:
    """The per-call fork token: HMAC-SHA256 of the call id, hex, first 32 characters (PROTOCOL.md)."""
    return hmac.new(secret.encode(), call_id.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


def raise_fd_limit() -> int:
    """Raises the soft open-files limit to the hard one: each fork holds a socket. Returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


class WatchedConnection:
    """The connection as the call session sees it, noting when audio last arrived (for the idle timeout)."""

    def __init__(self, ws: ServerConnection):
        self._ws = ws
        self.last_audio = time.monotonic()
        # True while the call session works on a message (a decoder it waits for, a slow step): frames then
        # queue in the socket unread, which is lateness, not a peer that went quiet.
        self.busy = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._ws, name)

    def _note(self, message: str | bytes) -> str | bytes:
        if isinstance(message, bytes):
            self.last_audio = time.monotonic()
        return message

    async def recv(self, *args: object, **kwargs: object) -> str | bytes:
        return self._note(await self._ws.recv(*args, **kwargs))  # type: ignore[arg-type]

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        async for message in self._ws:
            self.busy = True
            try:
                yield self._note(message)
            finally:
                self.busy = False
                self.last_audio = max(self.last_audio, time.monotonic()) if isinstance(message, bytes) \
                    else self.last_audio

    def idle_for(self, now: float) -> float:
        """Seconds the session has been waiting for audio that did not come (0 while it is busy)."""
        return 0.0 if self.busy else now - self.last_audio


def _select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # Echo audio.drachtio.org when offered; serve a client that offers none, as libwebsockets does.
    return Subprotocol(proto.SUBPROTOCOL) if proto.SUBPROTOCOL in offered else None


class _QuietLogger(logging.LoggerAdapter):
    """websockets' server logger with its error lines (failed handshakes: scans, idle sockets) rate-limited and
    without the traceback."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("websockets.server"), {})
        self._limited = RateLimitedLog(self.logger, per_s=0.2, burst=3)

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if level >= logging.ERROR:
            exc = sys.exc_info()[1] if kwargs.get("exc_info") is True else kwargs.get("exc_info")
            detail = f": {exc!r}" if isinstance(exc, BaseException) else ""
            self._limited.log(logging.WARNING, f"{msg}{detail}", *args)
        elif self.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)  # type: ignore[arg-type]


class HeapTrim:
    """Hands the C heap's free pages back to the system after calls end, at most once every `every_s`.

    Decoders allocate from the ASR threads' malloc arenas; memory freed at a call's end stays in those arenas
    (RSS) until glibc trims them, so RSS drifts up by the fragments left behind. `malloc_trim` returns them;
    where it does not exist (not glibc) nothing is done. Pure timing: the caller passes the time.
    """

    def __init__(self, every_s: float = TRIM_EVERY_S, trim: Callable[[], object] | None = None):
        self.every_s = every_s
        self._trim = trim if trim is not None else _malloc_trim()
        self._last: float | None = None
        self.trims = 0

    def due(self, now: float) -> bool:
        """True (and the time noted) when a trim should run now."""
        if self._trim is None or (self._last is not None and now - self._last < self.every_s):
            return False
        self._last = now
        return True

    def run(self) -> None:
        assert self._trim is not None
        self._trim()
        self.trims += 1


def _malloc_trim() -> Callable[[], object] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


class Worker:
    """The server plus what its calls share: the ASR engine, the thread pool it runs in, the counters."""

    def __init__(self, cfg: Config, engine: AsrEngine):
        self.cfg = cfg
        self.engine = engine
        self.port: int | None = None
        self._stats = WorkerStats()
        self._executor: ThreadPoolExecutor | None = None
        self._hotwords_dir = cfg.path(cfg.worker.hotwords_dir)
        self._secret = os.environ.get(cfg.worker.fork_secret_env) if cfg.worker.fork_secret_env else None
        self.over_cap = 0  # forks closed because max_connections were open
        self.heap = HeapTrim()
        self.idle_closed = 0
        self.bad_tokens = 0

    def stats(self) -> dict[str, float]:
        """A snapshot of the counters (safe to call from any thread)."""
        return {**self._stats.as_dict(), "over_cap": self.over_cap, "idle_closed": self.idle_closed,
                "bad_tokens": self.bad_tokens, "log_suppressed": limited.suppressed_total,
                "heap_trims": self.heap.trims}

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Listens on cfg.worker.listen until cancelled; sets `ready` once listening."""
        host, port = self.cfg.worker.listen
        self._executor = ThreadPoolExecutor(thread_name_prefix="asr")
        if not self._secret:
            log.warning("fork token check is off: $%s is unset (development only)", self.cfg.worker.fork_secret_env)
        try:
            # The library's own handshake failures (a port scan, an idle socket) are logged rate-limited, not
            # as a traceback per connection.
            async with ws_serve(self._handle, host, port, subprotocols=[Subprotocol(proto.SUBPROTOCOL)],
                                select_subprotocol=_select_subprotocol, compression=None,
                                max_size=self.cfg.worker.max_frame_bytes, ping_interval=PING_INTERVAL_S,
                                ping_timeout=PING_INTERVAL_S, open_timeout=METADATA_TIMEOUT_S,
                                logger=_QuietLogger()) as server:
                self.port = server.sockets[0].getsockname()[1]
                log.info("audio-fork worker listening on %s:%d (ASR engine %s)", host, self.port,
                         self.engine.name)
                if ready is not None:
                    ready.set()
                await asyncio.Future()  # until cancelled
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _handle(self, ws: ServerConnection) -> None:
        stats = self._stats
        stats.connections += 1
        stats.active += 1
        watched = WatchedConnection(ws)
        idle = asyncio.create_task(self._close_when_idle(watched))
        try:
            if stats.active > self.cfg.worker.max_connections:
                self.over_cap += 1
                limited.warning("fork refused: %d connections open (worker.max_connections)", stats.active - 1)
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(ws.close(CLOSE_TRY_AGAIN_LATER, "over capacity"), SEND_TIMEOUT_S)
                return
            session = await self._open(watched)
            if session is not None:
                log.info("call %s: fork connected (%d Hz)", session.meta.call_id, session.meta.rate)
                await session.run()
                log.info("call %s: fork closed", session.meta.call_id)
        finally:
            idle.cancel()
            stats.active -= 1
            if self.heap.due(time.monotonic()) and self._executor is not None:
                # Off the event loop: a trim walks every arena (milliseconds on a large heap).
                with contextlib.suppress(RuntimeError):  # the pool is shut down: the worker is stopping
                    self._executor.submit(self.heap.run)

    async def _close_when_idle(self, ws: WatchedConnection) -> None:
        """FreeSWITCH sends a frame every 20 ms, silence included: a fork without audio is a dead peer."""
        limit = self.cfg.worker.idle_timeout_s
        while True:
            await asyncio.sleep(max(0.05, limit - ws.idle_for(time.monotonic())))
            if ws.idle_for(time.monotonic()) >= limit:
                self.idle_closed += 1
                limited.warning("fork closed: no audio for %.1f s", limit)
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(ws.close(CLOSE_GOING_AWAY, "idle"), SEND_TIMEOUT_S)
                return

    def _token_ok(self, first: str, call_id: str) -> bool:
        if not self._secret:
            return True
        token = json.loads(first).get("token", "")  # parse_metadata already checked it is a JSON object
        return isinstance(token, str) and hmac.compare_digest(token, fork_token(self._secret, call_id))

    async def _open(self, ws: WatchedConnection) -> CallSession | None:  # type: ignore[override]
        """Reads and checks the metadata frame; rejects the connection (1008) when it is unusable."""
        path_id = ws.request.path.partition("?")[0].strip("/") if ws.request else ""
        try:
            first = await asyncio.wait_for(ws.recv(), METADATA_TIMEOUT_S)
        except TimeoutError:
            await self._reject(ws, f"no metadata within {METADATA_TIMEOUT_S:g} s")
            return None
        except ConnectionClosed:
            return None
        if isinstance(first, bytes):
            await self._reject(ws, "the first frame must be the metadata text (with 'rate'), got audio")
            return None
        try:
            meta = proto.parse_metadata(first, fallback_call_id=path_id)
        except proto.ProtocolError as exc:
            await self._reject(ws, str(exc))
            return None
        if not self._token_ok(first, meta.call_id):
            self.bad_tokens += 1
            await self._reject(ws, f"call {meta.call_id}: fork token missing or wrong")
            return None
        try:
            words = hotwords.load(self._hotwords_dir, meta.industry, meta.hotwords)
        except ValueError as exc:  # a broken hotword file must not drop the call
            log.error("call %s: hotwords not loaded: %s", meta.call_id, exc)
            words = meta.hotwords
        assert self._executor is not None
        worker = self.cfg.worker
        # The session reads a watched connection (a ServerConnection look-alike).
        return CallSession(ws, meta, vad_cfg=worker.vad, engine=self.engine, executor=self._executor,
                           asr_timeout_s=worker.asr_timeout_s, allow_injection=worker.allow_text_injection,
                           hotwords=words, stats=self._stats,
                           max_pending_utterances=worker.max_pending_utterances)

    async def _reject(self, ws: ServerConnection | WatchedConnection, reason: str) -> None:
        self._stats.rejected += 1
        limited.warning("fork rejected: %s", reason)
        try:
            await asyncio.wait_for(ws.send(proto.error(reason)), SEND_TIMEOUT_S)
            await ws.close(proto.CLOSE_POLICY_VIOLATION, "bad metadata")
        except (ConnectionClosed, TimeoutError):
            pass


async def serve(cfg: Config, engine: AsrEngine | None = None, *, ready: asyncio.Event | None = None) -> None:
    """Runs the worker until cancelled; builds the configured engine (with Vosk fallback) when none is given."""
    own_engine = engine is None
    log.info("open files limit: %d", raise_fd_limit())
    if engine is None:
        engine = create_asr(cfg.worker)  # once: every call shares this engine and its model
    worker = Worker(cfg, engine)
    if cfg.worker.metrics_listen is not None:
        from agent.ops.metrics import WorkerCollector, serve_metrics

        serve_metrics(WorkerCollector(worker.stats), cfg.worker.metrics_listen)
    try:
        await worker.run(ready)
    finally:
        if own_engine:
            engine.close()


class WorkerThread:
    """The worker on its own event loop in a daemon thread, for tests, the demo and benchmarks."""

    def __init__(self, cfg: Config, engine: AsrEngine | None = None):
        self.cfg = cfg
        self._engine = engine
        self._own_engine = engine is None
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._worker is None or self._worker.port is None:
            raise RuntimeError("worker is not listening; call start() first")
        return self._worker.port

    @property
    def engine(self) -> AsrEngine:
        if self._engine is None:
            raise RuntimeError("worker has no engine yet; call start() first")
        return self._engine

    def stats(self) -> dict[str, float]:
        return self._worker.stats() if self._worker else WorkerStats().as_dict()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> WorkerThread:
        """Returns once the server listens; raises what stopped it from starting."""
        if self._thread is not None:
            raise RuntimeError("worker thread already started")
        if self._engine is None:
            self._engine = create_asr(self.cfg.worker)  # here, so a bad config fails in the caller
        self._worker = Worker(self.cfg, self._engine)
        self._thread = threading.Thread(target=self._run, name="fork-worker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError(f"worker did not start listening within {timeout_s:g} s")
        if self._error is not None:
            raise RuntimeError(f"worker failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancels the server, waits for its thread, and closes the engine if this object built it."""
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("worker thread did not stop within %.0f s", timeout_s)
        if self._own_engine and self._engine is not None:
            self._engine.close()

    def __enter__(self) -> WorkerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        assert self._worker is not None
        self._loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._worker.run(ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # raises the start-up error
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
