"""Call records under a database that hangs, refuses or goes away: flush and close bounded, a down database tried
once per flush, records behind a spool or an overflow kept in order, a replay in batches, and the writer thread."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.store import calls
from agent.store.calls import CallStore, list_calls
from agent.store.db import Database
from agent.store.spool import DiskSpool
from tests.store.test_calls_mutants import DOWN, T0, T1, _CountingDatabase, store

__all__ = ["store"]  # the fixture


def _start(store: CallStore, call_id: str) -> None:
    store.submit("call_start", call_id=call_id, caller="010", destination="1588", started_at=T0)


def _spool_one_call(spool: Path) -> None:
    """A process that never reached its database left call c1 in the spool."""
    previous = CallStore(None, spool)
    _start(previous, "c1")
    assert previous.flush(10)
    previous.close()


def _wait_for_a_blocked_write(db: Database) -> None:
    """Until a statement of this test's database waits on a lock (the writer's, on the table locked here)."""
    for _ in range(500):
        with db.connection() as conn:
            if conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock'").fetchone():
                return
        time.sleep(0.02)
    raise AssertionError("the writer never blocked on the locked table")


def _within(seconds: float, call: Callable[[float], bool | None], timeout: float) -> bool | None:
    """call(timeout), which must return well within `seconds` (a test thread, so a hang fails the test)."""
    result: list[bool | None] = []
    thread = threading.Thread(target=lambda: result.append(call(timeout)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call.__name__}({timeout}) still waiting after {seconds} s"
    return result[0]


def test_flush_and_close_give_up_after_their_timeout_while_the_database_hangs(db: Database, tmp_path: Path) -> None:
    store = CallStore(db, tmp_path / "spool", max_queue=3, write_timeout_s=5)
    try:
        with db.connection() as lock:
            lock.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")  # the writer's next write hangs
            _start(store, "a")
            _wait_for_a_blocked_write(db)
            _start(store, "b")
            assert _within(5, store.flush, 0.2) is False  # its mark is queued behind b, but not answered in time
            _start(store, "c")  # the queue is full now
            assert _within(5, store.flush, 0.2) is False  # not even queued
            _within(5, store.close, 0.2)  # nor the stop: close still returns
            assert store._thread.is_alive()
        # The lock is gone: a, then b with the mark queued behind it, then c are written.
        assert store.flush(10)
        assert sorted(c["call_id"] for c in list_calls(db)) == ["a", "b", "c"]
        assert store.stats["written"] == 3 and store.stats["spooled"] == 0
    finally:
        store.close()
    assert not store._thread.is_alive()


def test_repeated_refused_starts_are_counted_and_each_is_said(
        db: Database, store: CallStore, caplog: pytest.LogCaptureFixture) -> None:
    for call_id in ("c1", "c2"):
        _start(store, call_id)
        store.submit("call_end", call_id=call_id, ended_at=T1, end_reason="caller_hangup")
    assert store.flush(10)
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        for call_id in ("c1", "c2"):
            _start(store, call_id)
        assert store.flush(10)
    assert store.stats["refused_starts"] == 2
    assert ("call c1: a new connection with a finished call's id was refused; its operations are ignored"
            in caplog.messages)


def test_a_reconcile_with_nothing_open_closes_nothing_and_says_nothing(
        db: Database, store: CallStore, caplog: pytest.LogCaptureFixture) -> None:
    _start(store, "c1")
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        assert store.reconcile_open_calls({"c1"}) == 0
    assert caplog.messages == [] and store.stats["reconciled"] == 0


def _turn(store: CallStore, call_id: str, seq: int, text: str, speaker: str = "caller") -> None:
    store.submit("turn", call_id=call_id, seq=seq, speaker=speaker, started_at=T1, text=text)


def _pending(store: CallStore) -> list[tuple[str, object, object]]:
    return [(r["op"], r.get("call_id"), r.get("text")) for r in store.spool.read()]


def test_an_overflow_is_written_after_the_records_queued_before_it(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CallStore(db, tmp_path / "spool", max_queue=2, write_timeout_s=5)
    try:
        with db.connection() as lock:
            lock.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            _start(store, "c1")
            _wait_for_a_blocked_write(db)
            assert _within(5, store.flush, 0.2) is False  # a mark queued first, then the first version
            _turn(store, "c1", 1, "first")
            with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
                _turn(store, "c1", 1, "final")  # the queue is full: this one goes to the disk, and the next
                _turn(store, "c1", 2, "two")
            assert store.stats["overflowed"] == 2
            assert caplog.messages == [f"call store queue full (2): spilling to {store.spool.overflow}"]
        assert store.flush(10)
        (call,) = list_calls(db)
        assert [t["text"] for t in call["turns"]] == ["final", "two"]
        _turn(store, "c1", 3, "after")  # the queue takes records again
        assert store.flush(10)
        assert store.stats["overflowed"] == 2 and not store.spool.overflow.exists()
        assert [t["text"] for t in list_calls(db)[0]["turns"]] == ["final", "two", "after"]
    finally:
        store.close()


def test_without_a_database_the_log_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CallStore(None, tmp_path / "spool")
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        _start(store, "c1")
        assert store.flush(10)
        store.close()
    assert "call store write failed, spooling to disk: no database configured" in caplog.messages


def test_close_leaves_no_connection_open(db: Database, tmp_path: Path) -> None:
    store = CallStore(db, tmp_path / "spool")
    _start(store, "c1")
    assert store.flush(10)
    store.close()
    for _ in range(250):  # a closed connection's server process leaves pg_stat_activity a moment later
        with db.connection() as conn:
            others = conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                                  " AND pid <> pg_backend_pid()").fetchone()
        if others["n"] == 0:
            return
        time.sleep(0.02)
    raise AssertionError("the writer's connection is still open after close")


def test_a_down_database_is_tried_once_per_flush_not_per_record(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(calls, "RETRY_EVERY_S", 60.0)  # "recently failed" for the whole test
    left = CallStore(None, tmp_path / "spool")  # a previous process left three records spooled
    for call_id in ("c1", "c2", "c3"):
        _start(left, call_id)
    assert left.flush(10)
    left.close()
    down = _CountingDatabase(DOWN)
    store = CallStore(down, tmp_path / "spool")
    assert store.flush(10)  # one forced replay: one attempt for the whole spool
    assert down.connects == 1
    _start(store, "c4")  # behind the spool, and the database failed just now: spooled without a try
    assert store.flush(10) and down.connects == 2  # (the flush itself forces one more)
    _start(store, "c5")
    store.close()
    assert down.connects == 2 and store.stats["spooled"] == 2
    assert [r[1] for r in _pending(store)] == ["c1", "c2", "c3", "c4", "c5"]


def test_a_record_behind_a_spool_is_written_after_it_not_spooled_too(
        db: Database, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(calls, "RETRY_EVERY_S", 60.0)  # no idle tick: the new record meets the spool
    _spool_one_call(tmp_path / "spool")
    store = CallStore(db, tmp_path / "spool")
    try:
        _start(store, "c2")
        assert store.flush(10)
        assert sorted(c["call_id"] for c in list_calls(db)) == ["c1", "c2"]
        assert (store.stats["replayed"], store.stats["spooled"]) == (1, 0)
    finally:
        store.close()


def test_a_refused_record_does_not_make_the_next_one_wait(db: Database, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(calls, "RETRY_EVERY_S", 60.0)
    store = CallStore(db, tmp_path / "spool")
    try:
        _turn(store, "c1", 1, "?", speaker="robot")  # refused by the speaker check, quarantined
        assert store.flush(10)
        _start(store, "c1")
        assert store.flush(10)
        assert store.stats["spooled"] == 0 and store.stats["errors"] == 0
        assert [c["call_id"] for c in list_calls(db)] == ["c1"] and store.dead.count == 1
    finally:
        store.close()


OUTAGE_TRIGGERS = """
CREATE FUNCTION test_outage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  IF to_jsonb(NEW) ->> 'text' = 'outage' OR to_jsonb(NEW) -> 'variables' ? 'callagent_placeholder' THEN
    RAISE EXCEPTION 'server shutting down' USING ERRCODE = 'admin_shutdown';  -- an outage to the client
  END IF;
  RETURN NEW; END $$;
CREATE TRIGGER test_outage BEFORE INSERT ON turns FOR EACH ROW EXECUTE FUNCTION test_outage();
CREATE TRIGGER test_outage BEFORE INSERT ON calls FOR EACH ROW EXECUTE FUNCTION test_outage();
"""


@pytest.mark.parametrize("first", ["refused", "orphan"])
def test_a_record_that_meets_an_outage_while_its_batch_is_retried_keeps_its_place(
        db: Database, tmp_path: Path, first: str) -> None:
    with db.connection() as conn:
        conn.execute(OUTAGE_TRIGGERS)
    store = CallStore(db, tmp_path / "spool", write_timeout_s=5)
    try:
        with db.connection() as lock:
            lock.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            _start(store, "c1")
            _wait_for_a_blocked_write(db)  # what follows is queued, and written as one batch
            if first == "refused":
                _turn(store, "c1", 1, "?", speaker="robot")  # refused: the batch is retried record by record
                _turn(store, "c1", 2, "outage")  # then the server goes away
            else:
                _turn(store, "lost", 1, "orphan")  # its placeholder call meets the outage
            _turn(store, "c1", 3, "after")
            _turn(store, "c1", 5, "later")
        assert store.flush(10)
        held = [("turn", "c1", "outage")] if first == "refused" else [("turn", "lost", "orphan")]
        assert _pending(store) == [*held, ("turn", "c1", "after"), ("turn", "c1", "later")]
        assert store.dead.count == (1 if first == "refused" else 0) and store.stats["spooled"] == 3
        with db.connection() as conn:
            conn.execute("DROP TRIGGER test_outage ON turns; DROP TRIGGER test_outage ON calls")
        assert store.flush(10) and not store.spool.has_pending()
        with db.connection() as conn:  # the server goes away again
            conn.execute("CREATE TRIGGER test_outage BEFORE INSERT ON turns FOR EACH ROW"
                         " EXECUTE FUNCTION test_outage()")
        _turn(store, "c1", 4, "outage")
        assert store.flush(10) and store.stats["spooled"] == 4  # counted on top of the first three
    finally:
        store.close()


def test_an_overflow_left_by_a_dead_process_goes_before_new_records(db: Database, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    left = [{"op": "call_start", **calls._DEFAULTS["call_start"], "call_id": "c1", "caller": "010",
             "destination": "1588", "started_at": T0},
            {"op": "turn", **calls._DEFAULTS["turn"], "call_id": "c1", "seq": 1, "speaker": "caller",
             "started_at": T1, "text": "first"}]
    DiskSpool.append(spool / "overflow.jsonl", left)  # its queue was full when it was killed
    store = CallStore(db, spool)
    try:
        _turn(store, "c1", 1, "final")
        assert store.flush(10)
        assert [t["text"] for t in list_calls(db)[0]["turns"]] == ["final"]
    finally:
        store.close()


def test_is_finished_answers_at_once_while_the_writer_hangs(db: Database, tmp_path: Path) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO calls (call_id, started_at, ended_at) VALUES ('done', %s, %s)", (T0, T1))
    counting = _CountingDatabase(db.dsn)
    store = CallStore(counting, tmp_path / "spool", write_timeout_s=5)
    try:
        _start(store, "c1")
        assert store.flush(10) and store.is_finished("done")  # after a write: asked, and answered
        with db.connection() as lock:
            lock.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            _start(store, "c2")
            _wait_for_a_blocked_write(db)
            since = store._writing_since
            assert since is not None
            time.sleep(max(0.0, since + 1.1 - time.monotonic()))  # the write has hung for over a second
            before = counting.connects
            assert not store.is_finished("done") and counting.connects == before  # no query behind the lock
        assert store.flush(10) and store.is_finished("done")
    finally:
        store.close()


def test_a_replay_in_batches_keeps_what_is_left_after_an_outage(
        db: Database, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(calls, "BATCH", 2)
    previous = CallStore(None, tmp_path / "spool")  # a process that never reached its database
    _start(previous, "c1")
    for seq, text, speaker in ((1, "one", "caller"), (2, "two", "agent"), (3, "?", "robot"), (4, "outage", "agent"),
                               (5, "five", "caller")):
        _turn(previous, "c1", seq, text, speaker)
    assert previous.flush(10)
    previous.close()
    with db.connection() as conn:
        conn.execute(OUTAGE_TRIGGERS)
    store = CallStore(db, tmp_path / "spool")
    try:
        assert store.flush(10)  # batches [start, 1], [2, 3: refused], [4: the outage, 5]
        assert _pending(store) == [("turn", "c1", "outage"), ("turn", "c1", "five")]
        assert [t["text"] for t in list_calls(db)[0]["turns"]] == ["one", "two"] and store.dead.count == 1
        with db.connection() as conn:
            conn.execute("DROP TRIGGER test_outage ON turns")
        with caplog.at_level(logging.INFO, logger="agent.store.calls"):
            assert store.flush(10)
        assert "replayed 2 spooled call-store operations" in caplog.messages
        assert [t["text"] for t in list_calls(db)[0]["turns"]] == ["one", "two", "outage", "five"]
        assert not store.spool.has_pending() and store.stats["replayed"] == 2 and store.dead.count == 1
    finally:
        store.close()


def test_the_writer_is_a_daemon_so_a_process_exiting_without_close_is_not_held(tmp_path: Path) -> None:
    here = CallStore(None, tmp_path / "here")
    assert here._thread.daemon  # what lets the interpreter exit past it (checked for real below)
    here.close()
    code = ("import pathlib, sys; from agent.store.calls import CallStore; "
            "CallStore(None, pathlib.Path(sys.argv[1])).submit('event', call_id='c1', seq=1, at='now', kind='k')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "spool")], cwd=Path(__file__).parents[2],
                          timeout=20, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_the_writer_keeps_serving_after_idle_ticks(db: Database, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(calls, "RETRY_EVERY_S", 0.02)  # the writer's idle tick: many of them pass below
    store = CallStore(db, tmp_path / "spool")
    try:
        time.sleep(0.3)
        _start(store, "c1")
        assert store.flush(10) and [c["call_id"] for c in list_calls(db)] == ["c1"]
    finally:
        store.close()


def test_a_spool_is_replayed_on_the_idle_tick_without_new_records(db: Database, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(calls, "RETRY_EVERY_S", 0.05)
    _spool_one_call(tmp_path / "spool")
    store = CallStore(db, tmp_path / "spool")
    try:
        for _ in range(500):  # no flush, no new record: only the writer's own tick replays the spool
            if store.stats["replayed"]:
                break
            time.sleep(0.02)
        assert [c["call_id"] for c in list_calls(db)] == ["c1"] and store.stats["replayed"] == 1
    finally:
        store.close()
