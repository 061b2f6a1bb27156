"""Runs the analytics when a call ends, off the call path, and feeds the metrics from the same store operations.

`instrument(deps, db, cfg)` wraps the call store so that every operation submitted (call_start, turn, call_end)
is also seen by the controller's counters and, on call_end, queued for analysis. The analysis runs in its own
thread once the call's end is in PostgreSQL (it retries briefly while the store writer catches up; a call whose
record is spooled because the database is down is picked up by `callagent analyze` or the dashboard later).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.analytics.model import CallAnalytics
from agent.analytics.settings import AnalyticsSettings, parse_analytics
from agent.analytics.store import analyze_call
from agent.config import Config
from agent.store.db import Database

log = logging.getLogger(__name__)

Observer = Callable[[Mapping[str, Any]], None]
QUEUE_MAX = 1000  # calls waiting for analysis; beyond this they are left to the backfill
FIRST_TRY_S = 0.5
RETRY_S = 2.0
TRIES = 5


class ObservedStore:
    """The call store, plus observers that see each operation as it is submitted (they must be quick)."""

    def __init__(self, store: Any, observers: list[Observer]):
        self._store = store
        self.observers = observers

    def submit(self, op: str, **fields: Any) -> None:
        self._store.submit(op, **fields)
        item = {"op": op, **fields}
        for observe in self.observers:
            try:
                observe(item)
            except Exception:  # noqa: BLE001 - counting must never fail a call
                log.exception("store observer failed on %s", op)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class AnalyticsRunner:
    def __init__(self, db: Database, settings: AnalyticsSettings, tts_engine: str,
                 clock: Callable[[], float] = time.monotonic,
                 on_done: Callable[[CallAnalytics], None] | None = None):
        self.db = db
        self.on_done = on_done
        self.settings = settings
        self.tts_engine = tts_engine
        self.clock = clock
        self.stats = {"analyzed": 0, "dropped": 0, "gave_up": 0, "errors": 0}
        self._queue: queue.Queue[tuple[str, float, int] | None] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread = threading.Thread(target=self._run, name="call-analytics", daemon=True)
        self._thread.start()

    def on_op(self, op: Mapping[str, Any]) -> None:
        if op.get("op") == "call_end":
            self._put(str(op["call_id"]), FIRST_TRY_S, 1)

    def _put(self, call_id: str, delay: float, attempt: int) -> None:
        try:
            self._queue.put_nowait((call_id, self.clock() + delay, attempt))
        except queue.Full:
            self.stats["dropped"] += 1

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            call_id, due, attempt = item
            wait = due - self.clock()
            if wait > 0:
                time.sleep(wait)
            try:
                done = analyze_call(self.db, call_id, self.settings, self.tts_engine)
            except Exception:  # noqa: BLE001 - the database may be down; the backfill catches up
                self.stats["errors"] += 1
                log.warning("analytics for call %s failed; `callagent analyze` will retry", call_id, exc_info=True)
                continue
            if done is not None:
                self.stats["analyzed"] += 1
                if self.on_done is not None:
                    self.on_done(done)
            elif attempt < TRIES:
                self._put(call_id, RETRY_S, attempt + 1)  # the end is not written yet
            else:
                self.stats["gave_up"] += 1


def count_analytics(stats: Any, a: CallAnalytics) -> None:
    """Feeds one call's quality and cost to the controller's counters (callagent_cost_krw_total, …)."""
    c = a.cost
    stats.record_analytics(a.quality_score, {"llm": c.llm_krw, "asr": c.asr_krw, "tts": c.tts_krw,
                                             "gpu": c.gpu_krw, "telephony": c.telephony_krw}, c.gpu_seconds)


def instrument(deps: Any, db: Database | None, cfg: Config) -> AnalyticsRunner | None:
    """Counts every store operation in `deps.stats` and analyses each call at its end (if configured)."""
    observers: list[Observer] = []
    if deps.stats is not None:
        observers.append(deps.stats.observe)
    settings = parse_analytics(cfg.analytics)
    runner = None
    if db is not None and settings.run_at_call_end:
        runner = AnalyticsRunner(db, settings, cfg.tts.engine,
                                 on_done=None if deps.stats is None else lambda a: count_analytics(deps.stats, a))
        observers.append(runner.on_op)
    deps.store = ObservedStore(deps.store, observers)
    return runner
