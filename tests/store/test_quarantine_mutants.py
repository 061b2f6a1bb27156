"""The dead-letter file an operator reads (what was refused, when, why, in readable UTF-8), the alert line
naming it, what `sanitize` does to keys that are not strings, and the `callagent_store_*` metrics."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from agent.store.quarantine import DEAD_LETTER_NAME, DeadLetter, StoreCollector, sanitize


def _entries(spool: Path) -> list[dict[str, object]]:
    text = (spool / DEAD_LETTER_NAME).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_a_refused_record_is_kept_with_its_reason_and_a_timezone_aware_time(tmp_path: Path, caplog) -> None:
    dead = DeadLetter(tmp_path)
    record = {"op": "turn", "call_id": "c1", "text": "김민지 고객님", "when": datetime(2026, 11, 29, 9, 30)}
    with caplog.at_level(logging.ERROR, logger="agent.store.quarantine"):
        dead.put("CheckViolation: speaker", record=record)
    raw = (tmp_path / DEAD_LETTER_NAME).read_text(encoding="utf-8")
    assert "김민지 고객님" in raw  # readable as written, not \uXXXX escapes
    (entry,) = _entries(tmp_path)
    assert set(entry) == {"at", "reason", "record"}
    assert entry["reason"] == "CheckViolation: speaker"
    assert entry["record"] == {**record, "when": "2026-11-29 09:30:00"}  # a value JSON cannot hold: as text
    assert datetime.fromisoformat(str(entry["at"])).utcoffset() is not None
    assert dead.count == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == f"call store: record quarantined in {tmp_path / DEAD_LETTER_NAME} (turn): CheckViolation: speaker"


def test_a_torn_spool_line_is_kept_raw_and_named_unparsable(tmp_path: Path, caplog) -> None:
    dead = DeadLetter(tmp_path)
    with caplog.at_level(logging.ERROR, logger="agent.store.quarantine"):
        dead.put("spool line is not JSON", raw='{"op": "turn", "text": "주문')
    (entry,) = _entries(tmp_path)
    assert set(entry) == {"at", "reason", "raw"}
    assert entry["raw"] == '{"op": "turn", "text": "주문'
    assert "(unparsable line): spool line is not JSON" in caplog.records[0].getMessage()


def test_sanitize_cleans_string_keys_and_keeps_other_keys() -> None:
    assert sanitize({1: "a\x00b", "k\x00": {2: ["\x00"]}}) == {1: "ab", "k": {2: [""]}}


class _Store:
    def snapshot(self) -> dict[str, int]:
        return {"written": 7, "spooled_records": 2, "queued": 3}


def test_store_metrics_are_counters_except_the_queue_depth() -> None:
    registry = CollectorRegistry()
    registry.register(StoreCollector(_Store()))
    text = generate_latest(registry).decode()
    assert "# HELP callagent_store_written_total Call store written\n" in text
    assert "# TYPE callagent_store_written_total counter\n" in text
    assert "callagent_store_written_total 7.0\n" in text
    assert "# HELP callagent_store_spooled_records_total Call store spooled records\n" in text
    assert "callagent_store_spooled_records_total 2.0\n" in text
    assert "# TYPE callagent_store_queued gauge\n" in text
    assert "callagent_store_queued 3.0\n" in text
