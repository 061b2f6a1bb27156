"""What the spool files hold, line by line: records waiting for PostgreSQL in order, readable UTF-8 JSON; torn
or foreign lines set aside with their reason; the overflow file joining the pending one without losing a line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agent.store.quarantine import DEAD_LETTER_NAME, DeadLetter
from agent.store.spool import DiskSpool


def _spool(tmp_path: Path) -> DiskSpool:
    return DiskSpool(tmp_path / "a" / "spool", DeadLetter(tmp_path))


def _dead(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / DEAD_LETTER_NAME
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_appended_records_are_one_readable_json_object_a_line(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    assert not spool.has_pending()
    at = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    assert DiskSpool.append(spool.pending, [{"op": "turn", "text": "주문 조회요", "at": at}]) == 1
    assert DiskSpool.append(spool.pending, ({"op": "call_end", "n": i} for i in range(2))) == 2
    assert spool.has_pending()
    assert spool.pending.read_text(encoding="utf-8") == (
        '{"op": "turn", "text": "주문 조회요", "at": "2026-11-29 09:00:00+00:00"}\n'
        '{"op": "call_end", "n": 0}\n{"op": "call_end", "n": 1}\n')
    assert spool.read() == [{"op": "turn", "text": "주문 조회요", "at": "2026-11-29 09:00:00+00:00"},
                            {"op": "call_end", "n": 0}, {"op": "call_end", "n": 1}]
    assert _dead(tmp_path) == []


def test_torn_and_foreign_lines_go_to_the_dead_letter_file_and_the_rest_is_read(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.pending.write_text('{"op": "turn", "text": "a\\u0000b"}\n\n   \n{"op": "tu\n[1, 2]\n{"op": 3}\n'
                             '{"text": "no op"}\n{"op": "event"}\n', encoding="utf-8")
    assert spool.read() == [{"op": "turn", "text": "ab"}, {"op": "event"}]  # cleaned as the store cleans input
    dead = _dead(tmp_path)
    assert [(d["reason"], d["raw"]) for d in dead] == [
        ("spool line is not JSON: Unterminated string starting at", '{"op": "tu'),
        ("spool line is not a store operation", "[1, 2]"),
        ("spool line is not a store operation", '{"op": 3}'),
        ("spool line is not a store operation", '{"text": "no op"}')]


def test_no_pending_file_reads_as_nothing(tmp_path: Path) -> None:
    assert _spool(tmp_path).read() == []


def test_keep_replaces_the_pending_file_and_an_empty_keep_removes_it(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.keep([])  # nothing there: nothing to do
    DiskSpool.append(spool.pending, [{"op": "a"}, {"op": "b"}, {"op": "c"}])
    spool.keep([{"op": "c", "text": "남은 것"}])
    assert spool.pending.read_text(encoding="utf-8") == '{"op": "c", "text": "남은 것"}\n'
    assert sorted(p.name for p in spool.pending.parent.iterdir()) == ["pending.jsonl"]  # no temporary left
    spool.keep([])
    assert not spool.has_pending()


def test_overflow_becomes_the_pending_file_when_there_is_none(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.fold_overflow()  # neither file: nothing happens
    assert not spool.has_pending()
    DiskSpool.append(spool.overflow, [{"op": "x"}])
    spool.fold_overflow()
    assert spool.pending.read_text() == '{"op": "x"}\n' and not spool.overflow.exists()


def test_overflow_goes_behind_the_pending_records_and_a_torn_last_line_is_ended(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    DiskSpool.append(spool.pending, [{"op": "older"}])
    spool.overflow.write_text('{"op": "newer", "text": "한글"}\n{"op": "last"', encoding="utf-8")
    spool.fold_overflow()
    assert spool.pending.read_text(encoding="utf-8") == (
        '{"op": "older"}\n{"op": "newer", "text": "한글"}\n{"op": "last"\n')
    assert not spool.overflow.exists()
    assert [r["op"] for r in spool.read()] == ["older", "newer"]  # the torn line is set aside, not glued on
    assert len(_dead(tmp_path)) == 1


def test_a_character_torn_by_a_crash_does_not_stop_the_replay(tmp_path: Path) -> None:
    """A kill -9 in the middle of a write can leave half of a Hangul syllable (3 bytes in UTF-8) on disk."""
    spool = _spool(tmp_path)
    torn = '{"op": "turn", "text": "주문"}\n{"op": "turn", "text": "조'.encode()[:-1]
    spool.pending.write_bytes(torn + b'\n{"op": "event", "text": "\xed\x95"}\n{"op": "call_end"}\n')
    assert [r["op"] for r in spool.read()] == ["turn", "event", "call_end"]
    assert spool.read()[1]["text"] == "\ufffd"  # the broken bytes, replaced; the record is kept
    assert [d["reason"] for d in _dead(tmp_path)][:1] == ["spool line is not JSON: Unterminated string starting at"]


def test_a_torn_overflow_file_still_joins_the_pending_one(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    DiskSpool.append(spool.pending, [{"op": "older"}])
    spool.overflow.write_bytes(b'{"op": "newer", "text": "\xed\x95"}\n')
    spool.fold_overflow()
    assert [r["op"] for r in spool.read()] == ["older", "newer"] and not spool.overflow.exists()


def test_an_overflow_left_by_a_previous_process_is_picked_up_by_name(tmp_path: Path) -> None:
    (tmp_path / "a" / "spool").mkdir(parents=True)
    (tmp_path / "a" / "spool" / "overflow.jsonl").write_text('{"op": "left"}\n')  # written by the process that died
    spool = _spool(tmp_path)
    spool.fold_overflow()
    assert spool.read() == [{"op": "left"}]
