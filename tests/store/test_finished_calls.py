"""A finished call's record is final; calls a dead controller left open are closed at the next start."""

from __future__ import annotations

from agent.store.calls import CallStore, list_calls, now_utc
from agent.store.db import Database

DOWN = "postgresql://nobody@127.0.0.1:1/none"


def _start(store: CallStore, call_id: str, caller: str, **variables: str) -> None:
    store.submit("call_start", call_id=call_id, caller=caller, destination="15881234", started_at=now_utc(),
                 variables=variables)


def _original(store: CallStore) -> None:
    _start(store, "c1", "01011112222", callagent_industry="banking")
    store.submit("turn", call_id="c1", seq=1, speaker="caller", text="잔액 조회", started_at=now_utc())
    store.submit("event", call_id="c1", seq=1, at=now_utc(), kind="barge_in")
    store.submit("call_end", call_id="c1", ended_at=now_utc(), end_reason="caller_hangup")


def _forgery(store: CallStore) -> None:
    _start(store, "c1", "attacker", callagent_industry="forged")
    store.submit("turn", call_id="c1", seq=1, speaker="caller", text="forged text", started_at=now_utc())
    store.submit("turn", call_id="c1", seq=2, speaker="agent", text="forged reply", started_at=now_utc())
    store.submit("event", call_id="c1", seq=2, at=now_utc(), kind="dtmf")
    store.submit("call_end", call_id="c1", ended_at=now_utc(), end_reason="transferred")


def _assert_original(db: Database) -> None:
    (call,) = list_calls(db, 5)
    assert call["caller"] == "01011112222" and call["variables"] == {"callagent_industry": "banking"}
    assert call["end_reason"] == "caller_hangup"
    assert [(t["seq"], t["text"]) for t in call["turns"]] == [(1, "잔액 조회")]
    assert [e["kind"] for e in call["events"]] == ["barge_in"]


def test_a_later_connection_cannot_rewrite_a_finished_call(db, tmp_path):
    store = CallStore(db, tmp_path / "spool")
    _original(store)
    assert store.flush(15)
    store.close()
    restarted = CallStore(db, tmp_path / "spool")  # the forged connection reaches a restarted controller
    assert restarted.is_finished("c1") and not restarted.is_finished("unknown")
    _forgery(restarted)
    assert restarted.flush(15)
    _assert_original(db)
    assert restarted.stats["refused_starts"] == 1 and restarted.stats["ignored"] == 4
    restarted.close()


def test_the_guard_holds_for_a_forgery_spooled_while_the_database_was_down(db, tmp_path):
    store = CallStore(Database(DOWN), tmp_path / "spool")
    _original(store)
    assert store.is_finished("c1")  # known from this process's own call_end, without the database
    _forgery(store)
    assert store.flush(15)
    store.db = db
    assert store.flush(15)
    _assert_original(db)
    store.close()


def test_an_open_call_is_not_finished(db, tmp_path):
    store = CallStore(db, tmp_path / "spool")
    _start(store, "live", "010")
    assert store.flush(15)
    assert not store.is_finished("live")
    assert not CallStore(Database(DOWN), tmp_path / "other").is_finished("live")  # unknown is not finished
    store.close()


def test_reconcile_closes_calls_left_open_except_live_ones(db, tmp_path):
    crashed = CallStore(db, tmp_path / "spool")
    for call_id in ("a", "b", "c", "d"):
        _start(crashed, call_id, "010")
    crashed.submit("call_end", call_id="d", ended_at=now_utc(), end_reason="agent_hangup")
    assert crashed.flush(15)
    crashed.close()
    # The previous process also spooled an end while the database was down: it must win over reconciling.
    spooled = CallStore(Database(DOWN), tmp_path / "spool")
    spooled.submit("call_end", call_id="c", ended_at=now_utc(), end_reason="transferred")
    assert spooled.flush(15)
    spooled.close()

    store = CallStore(db, tmp_path / "spool")
    assert store.reconcile_open_calls({"b"}) == 1
    _start(store, "new", "010")  # a call that started after the reconcile stays open
    assert store.flush(15)
    reasons = {c["call_id"]: (c["end_reason"], c["ended_at"] is not None) for c in list_calls(db, 10)}
    assert reasons == {"a": ("controller_lost", True), "b": (None, False), "c": ("transferred", True),
                       "d": ("agent_hangup", True), "new": (None, False)}
    assert store.reconcile_open_calls(None) == 2  # nothing live: b and new are closed too
    store.close()


class _CountingDatabase(Database):
    def __init__(self, dsn: str):
        super().__init__(dsn)
        self.connects = 0

    def connect(self, **kwargs):  # type: ignore[no-untyped-def]
        self.connects += 1
        return super().connect(**kwargs)


def test_is_finished_does_not_wait_on_a_database_the_writer_found_down(tmp_path):
    down = _CountingDatabase(DOWN)
    store = CallStore(down, tmp_path / "spool")
    _start(store, "c9", "010")
    assert store.flush(15) and store.stats["errors"] >= 1
    before = down.connects
    assert not store.is_finished("c9")  # unknown, answered at once: no connection attempt
    assert down.connects == before
    store.close()


def test_a_restarted_controller_closes_only_its_own_open_calls(db, tmp_path):
    """Two controllers on one database (8084 and 8085): 8084 restarts after a kill -9 while 8085 serves."""
    store = CallStore(db, tmp_path / "spool")
    _start(store, "mine", "010", callagent_controller="127.0.0.1:8084")
    _start(store, "theirs", "010", callagent_controller="127.0.0.1:8085")
    _start(store, "legacy", "010")  # stored before calls named their controller
    assert store.reconcile_open_calls(None, owner="127.0.0.1:8084") == 2
    open_now = {c["call_id"] for c in list_calls(db, 10) if c["ended_at"] is None}
    assert open_now == {"theirs"}
    store.close()
