"""Call records reach PostgreSQL in order, and survive the database being down (spool + replay)."""

from __future__ import annotations

import json

from agent.store.calls import CallStore, list_calls, now_utc
from agent.store.db import Database


def _write_call(store: CallStore, call_id: str) -> None:
    store.submit("call_start", call_id=call_id, caller="01012345678", destination="15881234",
                 industry="ecommerce", started_at=now_utc(), variables={"callagent_industry": "ecommerce"})
    store.submit("turn", call_id=call_id, seq=1, speaker="caller", text="주문 조회요", started_at=now_utc(),
                 source="asr", asr_ms=120.5, eos_wait_ms=800.0)
    store.submit("turn", call_id=call_id, seq=2, speaker="agent", text="주문번호를 말씀해 주세요.",
                 started_at=now_utc(), source="policy", first_audio_ms=310.0, detail={"overhead_ms": 1.2})
    store.submit("event", call_id=call_id, seq=1, at=now_utc(), kind="barge_in", detail={"utterance": 2})
    store.submit("call_end", call_id=call_id, ended_at=now_utc(), end_reason="transferred",
                 transfer_target="human XML ai_escalation", escalation_reason="dtmf")


def test_records_land_in_postgres(db, tmp_path):
    store = CallStore(db, tmp_path / "spool")
    _write_call(store, "call-a")
    assert store.flush(10)
    (call,) = list_calls(db, 1)
    assert call["call_id"] == "call-a" and call["end_reason"] == "transferred"
    assert [t["speaker"] for t in call["turns"]] == ["caller", "agent"]
    assert call["turns"][0]["asr_ms"] == 120.5 and call["turns"][1]["detail"] == {"overhead_ms": 1.2}
    assert call["events"][0]["kind"] == "barge_in"
    assert store.stats["spooled"] == 0
    store.close()


def test_database_down_spools_then_replays_in_order(db, tmp_path):
    down = Database("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    store = CallStore(down, tmp_path / "spool")
    _write_call(store, "call-b")
    assert store.flush(15)
    lines = (tmp_path / "spool" / "pending.jsonl").read_text().splitlines()
    assert [json.loads(x)["op"] for x in lines] == ["call_start", "turn", "turn", "event", "call_end"]
    assert list_calls(db, 5) == []
    store.db = db  # the database comes back
    assert store.flush(15)
    (call,) = list_calls(db, 1)
    assert call["call_id"] == "call-b" and len(call["turns"]) == 2 and call["end_reason"] == "transferred"
    assert not (tmp_path / "spool" / "pending.jsonl").exists()
    assert store.stats["replayed"] == 5
    store.close()
