"""What the call store does with values PostgreSQL would refuse: clean them at the edge, or set them aside.

`sanitize` strips what a text or jsonb column cannot hold (NUL bytes, lone UTF-16 surrogates) from every string
of a record, keys included, at any depth. `DeadLetter` keeps a record PostgreSQL still refused (a bad timestamp,
a CHECK violation, a line torn by a crash) in `<spool_dir>/dead-letter.jsonl` with the reason, so one bad record
costs itself and never the records behind it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.worker.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

DEAD_LETTER_NAME = "dead-letter.jsonl"

# JSON-shaped values as they reach the store (str keys, nested dicts and lists).
Value = object


def _clean_str(s: str) -> str:
    if "\x00" in s:
        s = s.replace("\x00", "")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: psycopg cannot encode it, so the whole record would fail
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def sanitize(value: Value) -> Value:
    """The same value with every string (and dict key) cleaned; other scalars unchanged."""
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, Mapping):
        return {(_clean_str(k) if isinstance(k, str) else k): sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return value


class DeadLetter:
    """Appends refused records with their reason; counts them and logs (at most one line per second)."""

    def __init__(self, spool_dir: Path):
        self.path = spool_dir / DEAD_LETTER_NAME
        self.count = 0
        self._lock = threading.Lock()
        self._log = RateLimitedLog(log, per_s=1.0)

    def put(self, reason: str, *, record: Mapping[str, object] | None = None, raw: str | None = None) -> None:
        entry: dict[str, object] = {"at": datetime.now(UTC).isoformat(), "reason": reason}
        if record is not None:
            entry["record"] = record
        if raw is not None:
            entry["raw"] = raw
        with self._lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            self.count += 1
        op = record.get("op") if record else "unparsable line"
        self._log.error("call store: record quarantined in %s (%s): %s", self.path, op, reason)


class StoreCollector(Collector):
    """Prometheus view of a CallStore's counters (`callagent_store_*`)."""

    _GAUGES = ("queued",)

    def __init__(self, store: object) -> None:
        self.store = store

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats: Mapping[str, int] = self.store.snapshot()  # type: ignore[attr-defined]
        for key, value in stats.items():
            family = GaugeMetricFamily if key in self._GAUGES else CounterMetricFamily
            yield family(f"callagent_store_{key}", f"Call store {key.replace('_', ' ')}", value=value)
