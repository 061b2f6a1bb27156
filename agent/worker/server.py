"""The audio-fork worker: a WebSocket server that mod_audio_fork streams each call's audio to (freeswitch.md §3).

`serve` runs it in the current event loop; `WorkerThread` runs it on its own loop in a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
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
from agent.worker.session import SEND_TIMEOUT_S, CallSession, WorkerStats

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0  # mod_audio_fork sends the metadata right after connecting
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Dead peers are found by ping; libwebsockets answers pings on its own.
PING_INTERVAL_S = 20.0
MAX_MESSAGE_BYTES = 1 << 20  # 20 ms of audio is 640 B; anything near this is not from FreeSWITCH


def _select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # Echo audio.drachtio.org when offered; serve a client that offers none, as libwebsockets does.
    return Subprotocol(proto.SUBPROTOCOL) if proto.SUBPROTOCOL in offered else None


class Worker:
    """The server plus what its calls share: the ASR engine, the thread pool it runs in, the counters."""

    def __init__(self, cfg: Config, engine: AsrEngine):
        self.cfg = cfg
        self.engine = engine
        self.port: int | None = None
        self._stats = WorkerStats()
        self._executor: ThreadPoolExecutor | None = None
        self._hotwords_dir = cfg.path(cfg.worker.hotwords_dir)

    def stats(self) -> dict[str, float]:
        """A snapshot of the counters (safe to call from any thread)."""
        return self._stats.as_dict()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Listens on cfg.worker.listen until cancelled; sets `ready` once listening."""
        host, port = self.cfg.worker.listen
        self._executor = ThreadPoolExecutor(thread_name_prefix="asr")
        try:
            async with ws_serve(self._handle, host, port, subprotocols=[Subprotocol(proto.SUBPROTOCOL)],
                                select_subprotocol=_select_subprotocol, compression=None,
                                max_size=MAX_MESSAGE_BYTES, ping_interval=PING_INTERVAL_S,
                                ping_timeout=PING_INTERVAL_S) as server:
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
        try:
            session = await self._open(ws)
            if session is not None:
                log.info("call %s: fork connected (%d Hz)", session.meta.call_id, session.meta.rate)
                await session.run()
                log.info("call %s: fork closed", session.meta.call_id)
        finally:
            stats.active -= 1

    async def _open(self, ws: ServerConnection) -> CallSession | None:
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
        try:
            words = hotwords.load(self._hotwords_dir, meta.industry, meta.hotwords)
        except ValueError as exc:  # a broken hotword file must not drop the call
            log.error("call %s: hotwords not loaded: %s", meta.call_id, exc)
            words = meta.hotwords
        assert self._executor is not None
        worker = self.cfg.worker
        return CallSession(ws, meta, vad_cfg=worker.vad, engine=self.engine, executor=self._executor,
                           asr_timeout_s=worker.asr_timeout_s, allow_injection=worker.allow_text_injection,
                           hotwords=words, stats=self._stats)

    async def _reject(self, ws: ServerConnection, reason: str) -> None:
        self._stats.rejected += 1
        log.warning("fork rejected: %s", reason)
        try:
            await asyncio.wait_for(ws.send(proto.error(reason)), SEND_TIMEOUT_S)
            await ws.close(proto.CLOSE_POLICY_VIOLATION, "bad metadata")
        except (ConnectionClosed, TimeoutError):
            pass


async def serve(cfg: Config, engine: AsrEngine | None = None, *, ready: asyncio.Event | None = None) -> None:
    """Runs the worker until cancelled; builds the configured engine (with Vosk fallback) when none is given."""
    own_engine = engine is None
    if engine is None:
        engine = create_asr(cfg.worker)
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
