"""Call records: a writer thread that never blocks a call, a disk spool so no record is lost, and guards so no
record is forged.

The call path only enqueues operations (values sanitised first). One thread applies them in order, in batches;
when PostgreSQL is down it appends them to `<spool_dir>/pending.jsonl` and keeps spooling (to keep order) until a
replay succeeds. A record PostgreSQL refuses (a bad value, a constraint) is quarantined to
`<spool_dir>/dead-letter.jsonl` and the rest go on. Every write is an upsert, so replaying is harmless.

A finished call is final: a `call_start` for a call_id whose row has `ended_at` set is refused, and every later
operation of that connection is ignored. What a kill -9 can lose is the in-memory queue (docs/reliability.md):
at most `max_queue` + one batch of operations; once the queue is full, `submit` appends to the disk itself.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from agent.config import Config
from agent.store.db import Database, Watchdog, is_outage
from agent.store.quarantine import DeadLetter, sanitize
from agent.store.spool import DiskSpool
from agent.worker.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

RETRY_EVERY_S = 2.0
BATCH = 100  # operations per transaction; one refused record costs a per-record retry of its batch only
MAX_QUEUE = 1000
WRITE_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 2.0  # is_finished: the controller waits for it before taking a call
_REMEMBER_ENDED = 10_000  # call ids this process ended, answered by is_finished without a query
_STOP: dict[str, Any] = {"op": "_stop"}

_SQL = {
    "call_start": (
        "INSERT INTO calls (call_id, caller, destination, industry, started_at, answered_at, variables)"
        " VALUES (%(call_id)s, %(caller)s, %(destination)s, %(industry)s, %(started_at)s, %(answered_at)s,"
        " %(variables)s)"
        " ON CONFLICT (call_id) DO UPDATE SET caller = EXCLUDED.caller, destination = EXCLUDED.destination,"
        " industry = EXCLUDED.industry, answered_at = EXCLUDED.answered_at, variables = EXCLUDED.variables"
        " WHERE calls.ended_at IS NULL"  # a finished call's record is final
    ),
    "turn": (
        "INSERT INTO turns (call_id, seq, speaker, started_at, ended_at, text, source, engine, heard_text,"
        " interrupted, eos_wait_ms, asr_ms, dialog_ms, tts_ms, first_audio_ms, detail)"
        " VALUES (%(call_id)s, %(seq)s, %(speaker)s, %(started_at)s, %(ended_at)s, %(text)s, %(source)s,"
        " %(engine)s, %(heard_text)s, %(interrupted)s, %(eos_wait_ms)s, %(asr_ms)s, %(dialog_ms)s, %(tts_ms)s,"
        " %(first_audio_ms)s, %(detail)s)"
        " ON CONFLICT (call_id, seq) DO UPDATE SET ended_at = EXCLUDED.ended_at, text = EXCLUDED.text,"
        " heard_text = EXCLUDED.heard_text, interrupted = EXCLUDED.interrupted,"
        " first_audio_ms = EXCLUDED.first_audio_ms, detail = EXCLUDED.detail"
    ),
    "event": (
        "INSERT INTO call_events (call_id, seq, at, kind, detail)"
        " VALUES (%(call_id)s, %(seq)s, %(at)s, %(kind)s, %(detail)s) ON CONFLICT DO NOTHING"
    ),
    "call_end": (
        "UPDATE calls SET ended_at = %(ended_at)s, end_reason = %(end_reason)s,"
        " hangup_cause = %(hangup_cause)s, transfer_target = %(transfer_target)s,"
        " escalation_reason = %(escalation_reason)s, summary = %(summary)s"
        " WHERE call_id = %(call_id)s AND ended_at IS NULL"
    ),
    # Calls left open by a controller that died: started before this one, and not live on the switch.
    "reconcile": (
        "UPDATE calls SET ended_at = %(ended_at)s, end_reason = %(reason)s"
        " WHERE ended_at IS NULL AND started_at < %(before)s AND call_id <> ALL(%(live)s)"
        # Several controllers on one database: each closes only calls it served (or that name no controller).
        " AND (%(owner)s = '' OR NOT variables ? 'callagent_controller'"
        " OR variables ->> 'callagent_controller' = %(owner)s)"
    ),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "call_start": {"answered_at": None, "variables": {}, "industry": ""},
    "turn": {"ended_at": None, "source": "", "engine": None, "heard_text": None, "interrupted": False,
             "eos_wait_ms": None, "asr_ms": None, "dialog_ms": None, "tts_ms": None, "first_audio_ms": None,
             "detail": {}},
    "event": {"detail": {}},
    "call_end": {"hangup_cause": None, "transfer_target": None, "escalation_reason": None, "summary": None},
    "reconcile": {"live": [], "owner": ""},
}
_JSON_FIELDS = ("variables", "detail")


def now_utc() -> str:
    return datetime.now(UTC).isoformat()


class CallStore:
    """Ordered, durable, non-blocking writes of call records."""

    def __init__(self, db: Database | None, spool_dir: Path, *, max_queue: int = MAX_QUEUE,
                 write_timeout_s: float = WRITE_TIMEOUT_S):
        self.db = db
        self.dead = DeadLetter(spool_dir)
        self.spool = DiskSpool(spool_dir, self.dead)
        self.spool_path = self.spool.pending
        self.write_timeout_s = write_timeout_s
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._submit_lock = threading.Lock()
        self._overflowing = self.spool.overflow.exists()  # a previous process overflowed and died
        self._held: dict[str, Any] | None = None  # a control item met while draining a batch
        self._conn: psycopg.Connection | None = None
        self._watchdog = Watchdog()
        self._last_attempt = 0.0
        self._writing_since: float | None = None
        self._db_ok = True  # False from a failed write until the next successful one
        self._refused: set[str] = set()  # call ids whose later start was refused (writer thread only)
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._log = RateLimitedLog(log, per_s=0.5)
        self.stats = {"written": 0, "spooled": 0, "replayed": 0, "errors": 0, "overflowed": 0,
                      "refused_starts": 0, "ignored": 0, "reconciled": 0}
        self._thread = threading.Thread(target=self._run, name="callstore-writer", daemon=True)
        self._thread.start()

    # call path -----------------------------------------------------------------------------------------

    def submit(self, op: str, **fields: Any) -> None:
        if op not in _SQL:
            raise ValueError(f"unknown store operation {op!r}")
        item = {"op": op, **_DEFAULTS[op], **sanitize(fields)}  # type: ignore[dict-item]
        if op == "call_end":
            self._remember_ended(str(item.get("call_id")))
        with self._submit_lock:
            if not self._overflowing:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    self._overflowing = True
                    self._log.warning("call store queue full (%d): spilling to %s", self._queue.maxsize,
                                      self.spool.overflow)
            DiskSpool.append(self.spool.overflow, [item])
            self.stats["overflowed"] += 1

    def is_finished(self, call_id: str) -> bool:
        """True when this call id already has a finished record: a new connection with it is not the call.
        Blocks up to a few seconds (run it off the event loop); False when the database cannot say."""
        if call_id in self._ended:
            return True
        if self.db is None or not self._db_ok or self._stuck():
            return False  # the database is down or hanging: answer now rather than wait for its timeout
        try:
            with self.db.connect(connect_timeout_s=int(QUERY_TIMEOUT_S)) as conn, \
                    self._watchdog.guard(conn, QUERY_TIMEOUT_S):
                row = conn.execute("SELECT ended_at FROM calls WHERE call_id = %s", (call_id,)).fetchone()
        except Exception as exc:  # noqa: BLE001 - unknown is "not finished"; the writer's guard still holds
            self._log.warning("is_finished(%s): database unavailable: %s", call_id, exc)
            return False
        return row is not None and row["ended_at"] is not None

    def reconcile_open_calls(self, live_uuids: set[str] | None = None, reason: str = "controller_lost",
                             timeout: float = 10.0, *, owner: str = "") -> int:
        """Closes calls left open by a crash (started before now, not in `live_uuids`) with `reason`. Runs in
        order after any spool left by the previous process; returns how many were closed (0 when spooled)."""
        before = self.stats["reconciled"]
        at = now_utc()
        self.submit("reconcile", live=sorted(live_uuids or ()), before=at, ended_at=at, reason=reason, owner=owner)
        self.flush(timeout)
        return self.stats["reconciled"] - before

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything submitted so far is written or spooled; False on timeout."""
        done = threading.Event()
        try:
            self._queue.put({"op": "_mark", "event": done}, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def snapshot(self) -> dict[str, int]:
        """Counters for metrics: written, spooled, quarantined, refused starts, queue depth…"""
        return {**self.stats, "quarantined": self.dead.count, "queued": self._queue.qsize(),
                "db_cuts": self._watchdog.cuts}

    def _remember_ended(self, call_id: str) -> None:
        self._ended[call_id] = None
        while len(self._ended) > _REMEMBER_ENDED:
            self._ended.popitem(last=False)

    # writer thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                self._fold_overflow()
                self._try_replay()
                continue
            if item is _STOP:
                self._fold_overflow()
                self._try_replay()
                self._disconnect()
                return
            if item["op"] == "_mark":
                self._fold_overflow()
                self._try_replay(force=True)
                item["event"].set()
                continue
            batch = self._drain(item)
            if self.spool.has_pending() and not self._try_replay():
                self.stats["spooled"] += DiskSpool.append(self.spool.pending, batch)
                continue
            rest = self._write(batch)
            if rest:
                self.stats["spooled"] += DiskSpool.append(self.spool.pending, rest)

    def _next(self) -> dict[str, Any] | None:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        try:
            return self._queue.get(timeout=RETRY_EVERY_S)
        except queue.Empty:
            return None

    def _drain(self, first: dict[str, Any]) -> list[dict[str, Any]]:
        batch = [first]
        while len(batch) < BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item["op"].startswith("_"):
                self._held = item
                break
            batch.append(item)
        return batch

    def _fold_overflow(self) -> None:
        """Once nothing older is queued, the overflow file joins the spool and submit uses the queue again."""
        if not self._overflowing and not self.spool.overflow.exists():
            return
        with self._submit_lock:
            if self._queue.qsize() or self._held is not None:
                return  # older records still queued: they go first
            self.spool.fold_overflow()
            self._overflowing = False

    def _connection(self) -> psycopg.Connection:
        if self.db is None:
            raise ConnectionError("no database configured")
        if self._conn is None or self._conn.closed:
            self._conn = self.db.connect(statement_timeout_ms=int(self.write_timeout_s * 1000))
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail in many ways
                self._conn.close()
            self._conn = None

    def _write(self, items: list[dict[str, Any]], force: bool = False) -> list[dict[str, Any]]:
        """Writes `items`; returns those left unwritten because the database is unavailable (to spool)."""
        if self._backing_off(force):
            return items  # don't hammer a database that just refused us
        self._last_attempt = time.monotonic()
        try:
            self._transaction(items)
            return []
        except Exception as exc:  # noqa: BLE001 - classified below: outage → spool, refusal → per record
            if is_outage(exc) or len(items) == 1:
                return self._failed(items, exc)
        for i, item in enumerate(items):  # one of them is refused: find it, keep the others
            try:
                self._transaction([item])
            except psycopg.errors.ForeignKeyViolation:
                left = self._orphan(item)
                if left:
                    return left + items[i + 1:]
            except Exception as exc:  # noqa: BLE001
                left = self._failed([item], exc)
                if left:
                    return left + items[i + 1:]
        return []

    def _orphan(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """A turn or event whose call_start was lost (quarantined, or in flight at a kill -9): keep it under a
        placeholder call, left open so the next start's reconcile closes it."""
        at = item.get("started_at") or item.get("at")
        placeholder = {"op": "call_start", "call_id": item.get("call_id"), "caller": "", "destination": "",
                       "started_at": at, **_DEFAULTS["call_start"], "variables": {"callagent_placeholder": True}}
        try:
            self._transaction([placeholder, item])
            self._log.warning("call %s: stored under a placeholder call (its start record is missing)",
                              item.get("call_id"))
            return []
        except Exception as exc:  # noqa: BLE001
            return self._failed([item], exc)

    def _stuck(self) -> bool:
        """The writer has waited on one write for over a second (a hung database)."""
        since = self._writing_since
        return since is not None and time.monotonic() - since > 1.0

    def _backing_off(self, force: bool) -> bool:
        recently_failed = self.stats["errors"] and time.monotonic() - self._last_attempt < RETRY_EVERY_S
        return bool(self._conn is None and recently_failed and not force)

    def _failed(self, items: list[dict[str, Any]], exc: BaseException) -> list[dict[str, Any]]:
        self._disconnect()
        if is_outage(exc):
            self._db_ok = False
            self.stats["errors"] += 1
            self._log.warning("call store write failed, spooling to disk: %s", exc)
            return items
        self.dead.put(f"{type(exc).__name__}: {exc}", record=items[0])
        return []

    def _transaction(self, items: list[dict[str, Any]]) -> None:
        self._writing_since = time.monotonic()
        try:
            conn = self._connection()
            with self._watchdog.guard(conn, self.write_timeout_s), conn.transaction():
                for item in items:
                    self._execute(conn, item)
        finally:
            self._writing_since = None
        self._db_ok = True
        self.stats["written"] += len(items)

    def _execute(self, conn: psycopg.Connection, item: dict[str, Any]) -> None:
        op, call_id = item["op"], item.get("call_id")
        if op != "reconcile" and call_id in self._refused:
            self.stats["ignored"] += 1
            return
        params = {k: Jsonb(v) if k in _JSON_FIELDS else v for k, v in item.items() if k != "op"}
        cur = conn.execute(_SQL[op], params)
        if op == "reconcile":
            self.stats["reconciled"] += max(cur.rowcount, 0)
            if cur.rowcount > 0:
                log.warning("closed %d calls left open by a previous controller (%s)", cur.rowcount, item["reason"])
        if op == "call_start" and cur.rowcount == 0:
            # Kept even if this transaction rolls back: the row was finished either way.
            self._refused.add(str(call_id))
            self.stats["refused_starts"] += 1
            self._log.warning("call %s: a new connection with a finished call's id was refused; its "
                              "operations are ignored", call_id)

    def _try_replay(self, force: bool = False) -> bool:
        """Applies the spool in batches, quarantining refused records; True when no spool is left."""
        if not self.spool.has_pending():
            return True
        if self._backing_off(force):
            return False
        items = self.spool.read()
        done = 0
        while done < len(items):
            batch = items[done:done + BATCH]
            left = self._write(batch, force)
            if left:
                self.spool.keep(items[done + len(batch) - len(left):])
                return False
            done += len(batch)
        self.spool.keep([])
        self.stats["replayed"] += len(items)
        if items:
            log.info("replayed %d spooled call-store operations", len(items))
        return True


def list_calls(db: Database, last: int = 10) -> list[dict[str, Any]]:
    """The newest `last` calls with their turns and events, newest first (for `callagent calls`)."""
    with db.connection() as conn:
        calls = conn.execute(
            "SELECT * FROM calls ORDER BY started_at DESC LIMIT %s", (last,)
        ).fetchall()
        for call in calls:
            call["turns"] = conn.execute(
                "SELECT * FROM turns WHERE call_id = %s ORDER BY seq", (call["call_id"],)
            ).fetchall()
            call["events"] = conn.execute(
                "SELECT * FROM call_events WHERE call_id = %s ORDER BY seq", (call["call_id"],)
            ).fetchall()
    return calls


def open_call_store(cfg: Config, db: Database | None, *, live_uuids: set[str] | None = None,
                    owner: str = "") -> CallStore:
    """The controller's store, built at its start: calls a previous run of this controller (`owner`, its
    listen address) left open (a kill -9, a lost host) are closed as `controller_lost` first; the calls other
    controllers on the same database are serving are left alone."""
    store = CallStore(db, cfg.path(cfg.store.spool_dir), max_queue=cfg.store.max_queue,
                      write_timeout_s=cfg.store.write_timeout_s)
    closed = store.reconcile_open_calls(live_uuids, timeout=cfg.store.write_timeout_s * 2, owner=owner)
    if closed:
        log.warning("%d calls left open by a previous controller closed as controller_lost", closed)
    return store
