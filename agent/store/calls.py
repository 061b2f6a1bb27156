"""Call records: a writer thread that never blocks a call, and a disk spool so no record is lost.

The call path only enqueues operations. One thread applies them in order; when PostgreSQL is down it appends
them to `<spool_dir>/pending.jsonl` and keeps spooling (to keep order) until a replay succeeds. Every write is an
upsert, so replaying a partly-applied spool is harmless.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from agent.store.db import Database

log = logging.getLogger(__name__)

RETRY_EVERY_S = 2.0
_STOP = {"op": "_stop"}

_SQL = {
    "call_start": (
        "INSERT INTO calls (call_id, caller, destination, industry, started_at, answered_at, variables)"
        " VALUES (%(call_id)s, %(caller)s, %(destination)s, %(industry)s, %(started_at)s, %(answered_at)s,"
        " %(variables)s)"
        " ON CONFLICT (call_id) DO UPDATE SET caller = EXCLUDED.caller, destination = EXCLUDED.destination,"
        " industry = EXCLUDED.industry, answered_at = EXCLUDED.answered_at, variables = EXCLUDED.variables"
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
        " escalation_reason = %(escalation_reason)s, summary = %(summary)s WHERE call_id = %(call_id)s"
    ),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "call_start": {"answered_at": None, "variables": {}, "industry": ""},
    "turn": {"ended_at": None, "source": "", "engine": None, "heard_text": None, "interrupted": False,
             "eos_wait_ms": None, "asr_ms": None, "dialog_ms": None, "tts_ms": None, "first_audio_ms": None,
             "detail": {}},
    "event": {"detail": {}},
    "call_end": {"hangup_cause": None, "transfer_target": None, "escalation_reason": None, "summary": None},
}
_JSON_FIELDS = ("variables", "detail")


def now_utc() -> str:
    return datetime.now(UTC).isoformat()


class CallStore:
    """Ordered, durable, non-blocking writes of call records."""

    def __init__(self, db: Database | None, spool_dir: Path):
        self.db = db
        self.spool_path = spool_dir / "pending.jsonl"
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._conn = None
        self._last_attempt = 0.0
        self.stats = {"written": 0, "spooled": 0, "replayed": 0, "errors": 0}
        self._thread = threading.Thread(target=self._run, name="callstore-writer", daemon=True)
        self._thread.start()

    def submit(self, op: str, **fields: Any) -> None:
        if op not in _SQL:
            raise ValueError(f"unknown store operation {op!r}")
        self._queue.put({"op": op, **_DEFAULTS[op], **fields})

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything submitted so far is written or spooled; False on timeout."""
        done = threading.Event()
        self._queue.put({"op": "_mark", "event": done})
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # writer thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=RETRY_EVERY_S)
            except queue.Empty:
                self._try_replay()
                continue
            if item is _STOP:
                self._try_replay()
                self._disconnect()
                return
            if item["op"] == "_mark":
                self._try_replay(force=True)
                item["event"].set()
                continue
            if self.spool_path.exists() and not self._try_replay():
                self._spool(item)
                continue
            if not self._apply([item]):
                self._spool(item)

    def _connection(self):
        if self.db is None:
            raise ConnectionError("no database configured")
        if self._conn is None or self._conn.closed:
            self._conn = self.db.connect()
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail in many ways
                self._conn.close()
            self._conn = None

    def _apply(self, items: list[dict[str, Any]], force: bool = False) -> bool:
        now = time.monotonic()
        recently_failed = self.stats["errors"] and now - self._last_attempt < RETRY_EVERY_S
        if self._conn is None and recently_failed and not force:
            return False  # don't hammer a database that just refused us
        self._last_attempt = now
        try:
            conn = self._connection()
            with conn.transaction():
                for item in items:
                    params = {k: Jsonb(v) if k in _JSON_FIELDS else v for k, v in item.items() if k != "op"}
                    conn.execute(_SQL[item["op"]], params)
            self.stats["written"] += len(items)
            return True
        except Exception as exc:  # noqa: BLE001 - any database failure means: keep the record on disk
            self.stats["errors"] += 1
            log.warning("call store write failed, spooling to disk: %s", exc)
            self._disconnect()
            return False

    def _spool(self, item: dict[str, Any]) -> None:
        with self.spool_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
            f.flush()
        self.stats["spooled"] += 1

    def _try_replay(self, force: bool = False) -> bool:
        """Applies the spool in one transaction; True when no spool is left."""
        if not self.spool_path.exists():
            return True
        items = [json.loads(line) for line in self.spool_path.read_text(encoding="utf-8").splitlines() if line]
        if items and not self._apply(items, force):
            return False
        self.spool_path.unlink()
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
