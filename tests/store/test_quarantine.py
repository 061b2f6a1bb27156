"""A record PostgreSQL refuses is set aside with its reason; every later record and call is still stored."""

from __future__ import annotations

import json

from agent.store.calls import CallStore, list_calls, now_utc
from agent.store.db import Database
from agent.store.quarantine import sanitize

DOWN = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1


def _call(store: CallStore, call_id: str, caller: str = "01012345678") -> None:
    store.submit("call_start", call_id=call_id, caller=caller, destination="15881234", industry="ecommerce",
                 started_at=now_utc(), variables={"callagent_industry": "ecommerce"})
    store.submit("turn", call_id=call_id, seq=1, speaker="caller", text="주문 조회요", started_at=now_utc())
    store.submit("turn", call_id=call_id, seq=2, speaker="agent", text="네.", started_at=now_utc())
    store.submit("call_end", call_id=call_id, ended_at=now_utc(), end_reason="agent_hangup")


def _poison(store: CallStore) -> None:
    store.submit("call_start", call_id="poison", caller="x", destination="y", started_at="not a time")
    store.submit("turn", call_id="ok-0", seq=9, speaker="robot", text="?", started_at=now_utc())


def _stored(db: Database) -> dict[str, dict]:
    return {c["call_id"]: c for c in list_calls(db, 100)}


def _dead(tmp_path) -> list[dict]:
    path = tmp_path / "spool" / "dead-letter.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_nul_bytes_are_stripped_from_every_string(db, tmp_path):
    store = CallStore(db, tmp_path / "spool")
    store.submit("call_start", call_id="nul\x00", caller="010\x001234", destination="1588", started_at=now_utc(),
                 variables={"sip_from\x00": ["a\x00b", {"deep": "c\x00"}], "n": 3})
    store.submit("turn", call_id="nul", seq=1, speaker="caller", text="안\x00녕", started_at=now_utc(),
                 detail={"x": "\ud800y"})  # a lone surrogate cannot be encoded either
    assert store.flush(15)
    (call,) = list_calls(db, 1)
    assert call["call_id"] == "nul" and call["caller"] == "0101234"
    assert call["variables"] == {"sip_from": ["ab", {"deep": "c"}], "n": 3}
    assert call["turns"][0]["text"] == "안녕" and call["turns"][0]["detail"] == {"x": "?y"}
    assert _dead(tmp_path) == []
    store.close()


def test_refused_record_is_quarantined_and_later_calls_are_stored(db, tmp_path):
    store = CallStore(db, tmp_path / "spool")
    _call(store, "ok-0")
    _poison(store)
    for i in range(1, 6):
        _call(store, f"ok-{i}")
    assert store.flush(15)
    calls = _stored(db)
    assert sorted(calls) == [f"ok-{i}" for i in range(6)]
    assert all(c["end_reason"] == "agent_hangup" and len(c["turns"]) == 2 for c in calls.values())
    dead = _dead(tmp_path)
    assert [d["record"]["op"] for d in dead] == ["call_start", "turn"]
    assert "not a time" in dead[0]["reason"] and "speaker" in dead[1]["reason"]
    assert store.snapshot()["quarantined"] == 2 and store.stats["spooled"] == 0
    store.close()


def test_poison_in_the_spool_does_not_block_the_replay_even_after_a_restart(db, tmp_path):
    store = CallStore(Database(DOWN), tmp_path / "spool")
    _call(store, "ok-0")
    _poison(store)
    assert store.flush(15)
    store.close()
    pending = tmp_path / "spool" / "pending.jsonl"
    with pending.open("a") as f:  # an old version spooled a NUL byte; a crash tore the last line
        f.write(json.dumps({"op": "event", "call_id": "ok-0", "seq": 1, "at": now_utc(), "kind": "dtmf\u0000",
                            "detail": {}}) + "\n")
        f.write('{"op": "turn", "call_id": "ok-0", "se')
    restarted = CallStore(Database(DOWN), tmp_path / "spool")
    for i in range(1, 6):
        _call(restarted, f"ok-{i}")
    assert restarted.flush(15) and pending.exists()
    restarted.db = db  # the database comes back
    assert restarted.flush(15)
    calls = _stored(db)
    assert sorted(calls) == [f"ok-{i}" for i in range(6)]
    assert all(len(c["turns"]) == 2 and c["ended_at"] is not None for c in calls.values())
    assert [e["kind"] for e in calls["ok-0"]["events"]] == ["dtmf"]
    dead = sorted(d.get("record", {}).get("op", "torn line") for d in _dead(tmp_path))
    assert dead == ["call_start", "torn line", "turn"]
    assert not pending.exists()
    restarted.close()

    again = CallStore(db, tmp_path / "spool")  # a second restart: nothing is re-quarantined, new calls land
    _call(again, "ok-6")
    assert again.flush(15)
    assert "ok-6" in _stored(db) and len(_dead(tmp_path)) == 3
    again.close()


def test_sanitize_keeps_other_values():
    assert sanitize({"a": 1, "b": None, "c": [True, 2.5, "\x00x"]}) == {"a": 1, "b": None, "c": [True, 2.5, "x"]}
