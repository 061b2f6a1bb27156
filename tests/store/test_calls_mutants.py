"""Call records as rows: what each operation writes (its defaults included), what a repeated operation may
change, the order of `list_calls`, the ids remembered as finished without a query, a record with a lost start
kept under a placeholder, and the counters an operator reads."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import pytest

from agent.config import Config, StoreConfig
from agent.store import calls
from agent.store.calls import CallStore, list_calls, open_call_store
from agent.store.db import Database

T0 = "2026-11-29T09:00:00+00:00"
T1 = "2026-11-29T09:00:05+00:00"
T2 = "2026-11-29T09:00:09+00:00"
DOWN = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1


def _rows(db: Database, sql: str) -> list[dict[str, object]]:
    with db.connection() as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def store(db: Database, tmp_path: Path):
    store = CallStore(db, tmp_path / "spool")
    yield store
    store.close()


def test_an_unknown_operation_is_refused_at_once(store: CallStore) -> None:
    with pytest.raises(ValueError, match="unknown store operation 'turns'"):
        store.submit("turns", call_id="x")


def test_each_operation_writes_its_row_with_defaults(db: Database, store: CallStore) -> None:
    store.submit("call_start", call_id="c1", caller="010", destination="1588", started_at=T0)
    store.submit("turn", call_id="c1", seq=1, speaker="caller", started_at=T0, text="네")
    store.submit("event", call_id="c1", seq=1, at=T1, kind="dtmf")
    store.submit("call_end", call_id="c1", ended_at=T2, end_reason="caller_hangup")
    assert store.flush(10)
    (call,) = list_calls(db, 1)
    assert (call["industry"], call["answered_at"], call["variables"]) == ("", None, {})
    assert (call["end_reason"], call["hangup_cause"], call["transfer_target"], call["escalation_reason"],
            call["summary"]) == ("caller_hangup", None, None, None, None)
    assert call["ended_at"].isoformat() == T2
    (turn,) = call["turns"]
    assert {k: turn[k] for k in ("ended_at", "source", "engine", "heard_text", "interrupted", "eos_wait_ms",
                                 "asr_ms", "dialog_ms", "tts_ms", "first_audio_ms", "detail")} == {
        "ended_at": None, "source": "", "engine": None, "heard_text": None, "interrupted": False,
        "eos_wait_ms": None, "asr_ms": None, "dialog_ms": None, "tts_ms": None, "first_audio_ms": None, "detail": {}}
    assert [(e["kind"], e["detail"]) for e in call["events"]] == [("dtmf", {})]
    assert store.snapshot() == {**store.stats, "quarantined": 0, "queued": 0, "db_cuts": 0}
    assert store.stats["written"] == 4 and store.stats["spooled"] == 0


def test_a_repeated_turn_updates_what_a_turn_learns_later_and_an_event_keeps_the_first(
        db: Database, store: CallStore) -> None:
    store.submit("call_start", call_id="c1", caller="010", destination="1588", started_at=T0,
                 answered_at=T1, industry="banking", variables={"a": "1"})
    store.submit("call_start", call_id="c1", caller="011", destination="1599", started_at=T2,
                 answered_at=T2, industry="ecommerce", variables={"b": "2"})
    store.submit("turn", call_id="c1", seq=1, speaker="agent", started_at=T0, text="안녕하세요", source="greeting",
                 engine="tts-a", dialog_ms=1.5, tts_ms=2.5)
    store.submit("turn", call_id="c1", seq=1, speaker="caller", started_at=T1, text="안녕하세요, 고객님",
                 ended_at=T2, heard_text="안녕", interrupted=True, first_audio_ms=300.0, detail={"cut": 1},
                 source="policy", engine="tts-b", dialog_ms=9.0, tts_ms=9.0)
    store.submit("event", call_id="c1", seq=1, at=T1, kind="barge_in", detail={"n": 1})
    store.submit("event", call_id="c1", seq=1, at=T2, kind="dtmf", detail={"n": 2})
    assert store.flush(10)
    (call,) = list_calls(db, 1)
    assert (call["caller"], call["destination"], call["industry"], call["variables"]) == (
        "011", "1599", "ecommerce", {"b": "2"})
    assert call["started_at"].isoformat() == T0 and call["answered_at"].isoformat() == T2
    (turn,) = call["turns"]
    assert (turn["speaker"], turn["started_at"].isoformat(), turn["source"], turn["engine"], turn["dialog_ms"],
            turn["tts_ms"]) == ("agent", T0, "greeting", "tts-a", 1.5, 2.5)  # who spoke and when: kept
    assert (turn["text"], turn["ended_at"].isoformat(), turn["heard_text"], turn["interrupted"],
            turn["first_audio_ms"], turn["detail"]) == ("안녕하세요, 고객님", T2, "안녕", True, 300.0, {"cut": 1})
    assert [(e["kind"], e["detail"]) for e in call["events"]] == [("barge_in", {"n": 1})]


def test_a_second_end_does_not_rewrite_the_first(db: Database, store: CallStore) -> None:
    store.submit("call_start", call_id="c1", caller="010", destination="1588", started_at=T0)
    store.submit("call_end", call_id="c1", ended_at=T1, end_reason="transferred", hangup_cause="NORMAL_CLEARING",
                 transfer_target="queue", escalation_reason="dtmf", summary="요약")
    store.submit("call_end", call_id="c1", ended_at=T2, end_reason="agent_hangup")
    assert store.flush(10)
    (call,) = list_calls(db, 1)
    assert (call["ended_at"].isoformat(), call["end_reason"], call["hangup_cause"], call["transfer_target"],
            call["escalation_reason"], call["summary"]) == (T1, "transferred", "NORMAL_CLEARING", "queue", "dtmf",
                                                            "요약")


def test_list_calls_newest_first_with_turns_and_events_in_order(db: Database, store: CallStore) -> None:
    for i, at in enumerate((T0, T2, T1)):
        store.submit("call_start", call_id=f"c{i}", caller="010", destination="1588", started_at=at)
    for seq in (3, 1, 2):
        store.submit("turn", call_id="c1", seq=seq, speaker="caller", started_at=T2, text=str(seq))
        store.submit("event", call_id="c1", seq=seq, at=T2, kind=f"k{seq}")
    assert store.flush(10)
    listed = list_calls(db, 2)
    assert [c["call_id"] for c in listed] == ["c1", "c2"]
    assert [t["seq"] for t in listed[0]["turns"]] == [1, 2, 3] and [e["kind"] for e in listed[0]["events"]] == [
        "k1", "k2", "k3"]
    assert listed[1]["turns"] == [] and listed[1]["events"] == []
    assert [c["call_id"] for c in list_calls(db)] == ["c1", "c2", "c0"]


def test_a_turn_whose_start_was_lost_is_kept_under_a_placeholder_call(db: Database, store: CallStore) -> None:
    store.submit("turn", call_id="lost", seq=1, speaker="caller", started_at=T1, text="여보세요")
    store.submit("event", call_id="gone", seq=1, at=T2, kind="dtmf")
    assert store.flush(10)
    rows = _rows(db, "SELECT call_id, caller, destination, started_at, ended_at, variables FROM calls"
                     " ORDER BY call_id")
    assert [(r["call_id"], r["caller"], r["destination"], r["started_at"].isoformat(), r["ended_at"],
             r["variables"]) for r in rows] == [
        ("gone", "", "", T2, None, {"callagent_placeholder": True}),
        ("lost", "", "", T1, None, {"callagent_placeholder": True})]
    assert [t["text"] for t in _rows(db, "SELECT text FROM turns")] == ["여보세요"]
    assert store.stats["written"] == 4  # placeholder + record, twice


def test_ended_calls_are_remembered_without_the_database(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(calls, "_REMEMBER_ENDED", 2)
    store = CallStore(None, tmp_path / "spool")
    try:
        assert not store.is_finished("a")  # no database: unknown, so not finished
        for call_id in ("a", "b", "c"):
            store.submit("call_end", call_id=call_id, ended_at=T0, end_reason="caller_hangup")
        assert [store.is_finished(c) for c in ("a", "b", "c")] == [False, True, True]  # the oldest forgotten
        assert store.flush(10)
        lines = (tmp_path / "spool" / "pending.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(x)["call_id"] for x in lines] == ["a", "b", "c"]
        assert store.stats["spooled"] == 3 and store.stats["errors"] >= 1
    finally:
        store.close()


def test_is_finished_asks_the_database(db: Database, store: CallStore) -> None:
    store.submit("call_start", call_id="open", caller="010", destination="1588", started_at=T0)
    assert store.flush(10)
    other = CallStore(db, store.spool.pending.parent)  # another process: nothing remembered
    try:
        with db.connection() as conn:
            conn.execute("INSERT INTO calls (call_id, caller, destination, started_at, ended_at)"
                         " VALUES ('done', '010', '1588', %s, %s)", (T0, T1))
        assert other.is_finished("done") and not other.is_finished("open") and not other.is_finished("never")
    finally:
        other.close()


def test_open_call_store_closes_only_this_controllers_calls_and_uses_the_configured_store(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    crashed = CallStore(db, tmp_path / "old")
    for call_id, owner in (("mine", "10.0.0.1:8084"), ("live", "10.0.0.1:8084"), ("theirs", "10.0.0.2:8084")):
        crashed.submit("call_start", call_id=call_id, caller="010", destination="1588", started_at=T0,
                       variables={"callagent_controller": owner})
    assert crashed.flush(10)
    crashed.close()
    cfg = Config(store=StoreConfig(spool_dir="spool", max_queue=20, write_timeout_s=3.0), base_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        store = open_call_store(cfg, db, live_uuids={"live"}, owner="10.0.0.1:8084")
    try:
        assert {c["call_id"]: c["end_reason"] for c in list_calls(db)} == {
            "mine": "controller_lost", "live": None, "theirs": None}
        assert "1 calls left open by a previous controller closed as controller_lost" in caplog.messages
        assert "closed 1 calls left open by a previous controller (controller_lost)" in caplog.messages
        assert store.spool_path == tmp_path / "spool" / "pending.jsonl"
        assert (store._queue.maxsize, store.write_timeout_s) == (20, 3.0)
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        again = open_call_store(cfg, db, owner="10.0.0.1:8084")  # nothing live now: "live" is closed too
    again.close()
    assert again.stats["reconciled"] == 1 and "closed as controller_lost" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        open_call_store(cfg, db, owner="10.0.0.1:8084").close()  # nothing left to close: nothing said
    assert "controller_lost" not in caplog.text
    anyone = open_call_store(cfg, db)  # a controller that names no owner closes every open call
    anyone.close()
    assert anyone.stats["reconciled"] == 1 and [c["end_reason"] for c in list_calls(db)] == ["controller_lost"] * 3


def test_record_times_are_utc_whatever_the_host_zone() -> None:
    assert dt.datetime.fromisoformat(calls.now_utc()).utcoffset() == dt.timedelta(0)


def test_list_calls_shows_the_newest_ten_by_default(db: Database, store: CallStore) -> None:
    for i in range(11):
        store.submit("call_start", call_id=f"c{i:02d}", caller="010", destination="1588",
                     started_at=f"2026-11-29T09:00:{i:02d}+00:00")
    assert store.flush(10)
    assert [c["call_id"] for c in list_calls(db)] == [f"c{i:02d}" for i in range(10, 0, -1)]


def test_a_reconcile_without_an_owner_closes_open_calls_of_every_controller(db: Database, store: CallStore) -> None:
    store.submit("call_start", call_id="c1", caller="010", destination="1588", started_at=T0,
                 variables={"callagent_controller": "10.0.0.2:8084"})
    assert store.reconcile_open_calls() == 1
    assert [c["end_reason"] for c in list_calls(db)] == ["controller_lost"]


def test_a_lost_start_is_said_in_the_log_with_the_call_id(
        db: Database, store: CallStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        store.submit("turn", call_id="lost", seq=1, speaker="caller", started_at=T1, text="여보세요")
        store.submit("event", call_id="lost", seq=1, at=T2, kind="dtmf")
        assert store.flush(10)
    assert "call lost: stored under a placeholder call (its start record is missing)" in caplog.messages


def test_a_record_whose_placeholder_is_refused_is_quarantined_and_the_rest_are_written(
        db: Database, store: CallStore) -> None:
    with db.connection() as conn:  # a database that refuses placeholder calls (a rule added on the server)
        conn.execute("CREATE FUNCTION no_placeholder() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                     " IF NEW.variables ? 'callagent_placeholder' THEN RAISE EXCEPTION 'no placeholders'; END IF;"
                     " RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER no_placeholder BEFORE INSERT ON calls FOR EACH ROW"
                     " EXECUTE FUNCTION no_placeholder()")
    store.submit("turn", call_id="lost", seq=1, speaker="caller", started_at=T1, text="여보세요")
    store.submit("call_start", call_id="c1", caller="010", destination="1588", started_at=T0)
    store.submit("turn", call_id="c1", seq=1, speaker="caller", started_at=T1, text="네")
    assert store.flush(10)
    (call,) = list_calls(db)
    assert (call["call_id"], [t["text"] for t in call["turns"]]) == ("c1", ["네"])
    lines = (store.spool.pending.parent / "dead-letter.jsonl").read_text(encoding="utf-8").splitlines()
    (dead,) = [json.loads(x) for x in lines]
    assert dead["reason"].startswith("RaiseException: no placeholders")
    assert (dead["record"]["call_id"], dead["record"]["text"]) == ("lost", "여보세요")


class _CountingDatabase(Database):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.connects = 0

    def connect(self, **kwargs):  # type: ignore[no-untyped-def]
        self.connects += 1
        return super().connect(**kwargs)


def test_each_failed_attempt_on_a_down_database_is_counted_and_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    down = _CountingDatabase(DOWN)
    store = CallStore(down, tmp_path / "spool")
    with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
        store.submit("call_start", call_id="c1", caller="010", destination="1588", started_at=T0)
        assert store.flush(10)  # a write, then a forced replay: two attempts at least
        store.close()
    assert down.connects >= 2 and store.stats["errors"] == down.connects
    said = [m for m in caplog.messages if m.startswith("call store write failed, spooling to disk: ")]
    assert said and "port 1" in said[0]


def test_is_finished_says_why_it_could_not_ask(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CallStore(Database(DOWN), tmp_path / "spool")
    try:
        with caplog.at_level(logging.WARNING, logger="agent.store.calls"):
            assert not store.is_finished("c1")
    finally:
        store.close()
    (said,) = [m for m in caplog.messages if m.startswith("is_finished(c1): database unavailable: ")]
    assert "port 1" in said


def test_is_finished_answers_at_once_only_while_a_write_hangs_over_a_second(tmp_path: Path, db: Database) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO calls (call_id, started_at, ended_at) VALUES ('done', %s, %s)", (T0, T1))
    counting = _CountingDatabase(db.dsn)
    store = CallStore(counting, tmp_path / "spool")
    try:
        assert store.flush(10)  # the writer is idle: it will not touch the marker set below
        store._writing_since = time.monotonic() - 0.5  # a write under way, not yet long
        assert store.is_finished("done") and counting.connects == 1
        store._writing_since = time.monotonic() - 1.5  # a write hanging for over a second
        assert not store.is_finished("done") and counting.connects == 1  # answered without asking
        store._writing_since = None
    finally:
        store.close()
