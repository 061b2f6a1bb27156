"""The agent's two processes as benchmark children: `python -m agent.ops.bench.procs controller|worker`.

Each builds the same objects `callagent run` / `callagent asr-worker` build, listens on a free loopback port
(written to --ready as JSON), and on SIGTERM writes its counters and probes to --stats. Being separate
processes is what lets the benchmark count their CPU apart from the simulator's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agent.config import Config, load_config
from agent.ops.bench.stats import summary

PROBE_PERIOD_S = 0.01
PACKET_S = 0.02          # mod_audio_fork packet period: more than this behind is "late"
# The analyses still queued at stop: calls are analysed as they end, so only the last few remain. Short, so
# that a database that hangs (a fault scenario) cannot hold the stop past the bench's STOP_TIMEOUT_S; a call
# left unanalysed is caught up by the dashboard or `callagent analyze`.
ANALYTICS_CLOSE_S = 8.0


class LagProbe:
    """How late the event loop wakes from a short sleep: a loop that is this late is this late on every frame."""

    def __init__(self) -> None:
        self.samples_ms: list[float] = []

    def add(self, started: float) -> None:
        self.samples_ms.append(max(0.0, time.monotonic() - started - PROBE_PERIOD_S) * 1000.0)

    def report(self) -> dict[str, Any]:
        over = sum(1 for s in self.samples_ms if s > PACKET_S * 1000)
        return {**summary(self.samples_ms), "over_packet_share": over / len(self.samples_ms)
                if self.samples_ms else None}


class FrameClock:
    """Per forked call: when each audio message reached the worker's stream, against when it was due.

    Due times come from the stream itself (20 ms per packet since the call's first packet), anchored on the
    earliest-arriving packet, so a packet is late when it is processed more than one period after that
    schedule — whether the simulator sent it late or the worker read it late.
    """

    def __init__(self) -> None:
        self.streams: list[tuple[list[float], list[int], int]] = []
        self.installed = False

    def install(self) -> None:
        """Wraps CallStream.feed in this process only; a worker without it still runs, untimed."""
        from agent.worker import session

        cls = getattr(session, "CallStream", None)
        original = getattr(cls, "feed", None)
        if original is None:
            logging.getLogger(__name__).warning("worker has no CallStream.feed: frames are not timed")
            return
        streams = self.streams

        def feed(stream: Any, data: bytes) -> Any:
            rec = stream.__dict__.get("_bench_clock")
            if rec is None:
                rec = ([], [], stream.rate)
                stream._bench_clock = rec
                streams.append(rec)
            rec[0].append(time.monotonic() - stream.stream_s)
            rec[1].append(len(data))
            return original(stream, data)

        cls.feed = feed  # benchmark child only: instrumentation, not behaviour
        self.installed = True

    def report(self) -> dict[str, Any]:
        if not self.installed:
            return {"frames": None, "late_frames": None, "lateness_ms": summary([])}
        late = total = 0
        lateness_ms: list[float] = []
        for offsets, sizes, rate in self.streams:
            frame_bytes = int(rate * PACKET_S) * 2
            packets = [max(1, s // frame_bytes) for s in sizes if s]
            offs = [o for o, s in zip(offsets, sizes, strict=True) if s]
            if not offs:
                continue
            origin = min(o - (n - 1) * PACKET_S for o, n in zip(offs, packets, strict=True))
            for o, n in zip(offs, packets, strict=True):
                behind = o - origin
                lateness_ms.append(behind * 1000.0)
                total += n
                late += min(n, max(0, math.ceil((behind - PACKET_S) / PACKET_S - 1e-9)))
        return {"frames": total, "late_frames": late, "lateness_ms": summary(lateness_ms)}


def object_census(top: int = 12) -> dict[str, Any]:
    """Live Python objects (after a collection) and the most numerous types: per-call state that is kept
    shows as a count that grows with the calls served, whatever the allocator does with RSS."""
    gc.collect()
    objs = gc.get_objects()
    types = collections.Counter(type(o).__name__ for o in objs)
    return {"objects": len(objs), "threads": threading.active_count(), "top_types": dict(types.most_common(top))}


def _append(path: Path, data: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(data, default=str) + "\n")


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    tmp.replace(path)


def run_controller(cfg: Config, ready: Path, stats_out: Path, fork_url: str,
                   census: tuple[Path, float] | None = None) -> None:
    import gevent
    from gevent.event import Event

    from agent.analytics.runner import instrument
    from agent.call.controller import THREADPOOL_SIZE, Controller
    from agent.ops.runtime import build_call_deps
    from agent.store.db import Database

    cfg = dataclasses.replace(cfg, controller=dataclasses.replace(
        cfg.controller, listen=("127.0.0.1", 0), fork_url=fork_url))
    if cfg.store.dsn is None:
        raise SystemExit("benchmark controller needs store.dsn")
    db = Database(cfg.store.dsn)
    deps = build_call_deps(cfg, db)
    # As `callagent run` does: counters from the store's operations, and each call analysed when it ends.
    analytics = instrument(deps, db, cfg)
    gevent.get_hub().threadpool.maxsize = THREADPOOL_SIZE
    controller = Controller(deps)
    controller.start()
    probe = LagProbe()

    def watch() -> None:
        while True:
            started = time.monotonic()
            gevent.sleep(PROBE_PERIOD_S)
            probe.add(started)

    def count() -> None:
        assert census is not None
        while True:
            _append(census[0], {"t": time.time(), "active": controller.active, **object_census()})
            gevent.sleep(census[1])

    watcher = gevent.spawn(watch)
    counter = gevent.spawn(count) if census else None
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    _write(ready, {"port": controller.port, "pid": os.getpid(), "tts": deps.speaker.engine.name,
                   "policy": type(deps.policy).__name__})
    stop.wait()
    watcher.kill()
    if counter is not None:
        counter.kill()
    controller.stop()
    deps.store.flush(20)
    if analytics is not None:
        analytics.close(ANALYTICS_CLOSE_S)  # the last calls' analyses, queued at their end, finish first
    s = deps.stats
    _write(stats_out, {
        "turns": s.turns, "barge_ins": s.barge_ins, "overhead_ms": s.overhead_ms,
        "first_audio_ms": s.first_audio_ms, "active": controller.active, "rejected": controller.rejected,
        "store": dict(deps.store.stats), "loop_lag_ms": probe.report(),
        "analytics": None if analytics is None else dict(analytics.stats),
    })
    deps.store.close()


async def _worker_main(cfg: Config, ready: Path, stats_out: Path, census: tuple[Path, float] | None = None) -> None:
    from agent.engines.asr.registry import create_asr
    from agent.worker.server import Worker

    cfg = dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, listen=("127.0.0.1", 0)))
    clock = FrameClock()
    clock.install()
    engine = create_asr(cfg.worker)
    worker = Worker(cfg, engine)
    up = asyncio.Event()
    server = asyncio.create_task(worker.run(up))
    waiter = asyncio.create_task(up.wait())
    await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if server.done():
        server.result()  # raises what stopped it
    probe = LagProbe()

    async def watch() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(PROBE_PERIOD_S)
            probe.add(started)

    async def count() -> None:
        assert census is not None
        while True:
            _append(census[0], {"t": time.time(), "tasks": len(asyncio.all_tasks()), **worker.stats(),
                                **object_census()})
            await asyncio.sleep(census[1])

    watcher = asyncio.create_task(watch())
    counter = asyncio.create_task(count()) if census else None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.cancel)
    _write(ready, {"port": worker.port, "pid": os.getpid(), "engine": engine.name})
    with contextlib.suppress(asyncio.CancelledError):
        await server
    watcher.cancel()
    if counter is not None:
        counter.cancel()
    engine.close()
    _write(stats_out, {"engine": engine.name, "stats": worker.stats(), "loop_lag_ms": probe.report(),
                       "frame_clock": clock.report()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.ops.bench.procs")
    p.add_argument("role", choices=("controller", "worker"))
    p.add_argument("--config", required=True)
    p.add_argument("--ready", required=True, help="JSON file written once listening")
    p.add_argument("--stats", required=True, help="JSON file written on SIGTERM")
    p.add_argument("--fork-url", default="ws://127.0.0.1:9", help="controller: the worker's URL")
    p.add_argument("--census", default=None, help="JSON lines: live Python objects every --census-every s")
    p.add_argument("--census-every", type=float, default=30.0)
    args = p.parse_args(argv)
    census = (Path(args.census), args.census_every) if args.census else None
    cfg = load_config(args.config)
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "controller":
        run_controller(cfg, Path(args.ready), Path(args.stats), args.fork_url, census)
    else:
        asyncio.run(_worker_main(cfg, Path(args.ready), Path(args.stats), census))
    return 0


if __name__ == "__main__":
    sys.exit(main())
