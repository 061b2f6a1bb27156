"""What a call leaves at rest: the turns, events, summary and DTMF keys in PostgreSQL and in the disk spool
hold masked values only (the call record masks at the edge), and keys typed as a number are stored
without their digits."""

from __future__ import annotations

import json
from pathlib import Path

from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.store.calls import CallStore, now_utc
from agent.store.db import Database

SECRETS = ("4532015112830366", "0151", "1234565", "456789", "1234-5678", "hong.gildong", "테헤란로 123",
           "9876", "4321", "98765")
CALLER_SAYS = [
    "카드번호는 4532 0151 1283 0366 이에요",
    "주민번호는 850312-1234565입니다",
    "계좌번호는 110-123-456789예요",
    "제 번호는 010-1234-5678이에요",
    "이메일은 hong.gildong@naver.com 입니다",
    "주소는 서울시 강남구 테헤란로 123 456호예요",
]


def play_call(store: CallStore, call_id: str) -> None:
    record = CallRecord(store, ChannelInfo(uuid=call_id, caller="01055550000",
                                           variables={"sip_from_display": "홍길동 01098765432"}))
    record.answered()
    for text in CALLER_SAYS:
        record.turn(record.next_turn_seq(), "caller", text, started_at=now_utc(), source="asr",
                    detail={"alternatives": [text]})
    record.turn(record.next_turn_seq(), "agent", "연락처 010-1234-5678로 변경해 드렸어요.", started_at=now_utc(),
                heard_text="연락처 010-1234-5678로", source="policy")
    record.event("backchannel", text="네 비밀번호는 4321이요")
    record.event("dtmf", digit="0")  # a lone menu key: kept
    record.event("no_input")
    for digit in "1234":  # a number typed on the keypad: never stored
        record.event("dtmf", digit=digit)
    record.turn(record.next_turn_seq(), "caller", "98765", started_at=now_utc(), source="dtmf")  # the keys, as a turn
    record.event("no_input")
    record.turn(record.next_turn_seq(), "agent", "카드 번호를 입력해 주세요.", started_at=now_utc(), source="policy")
    record.event("dtmf", digit="9")  # one key, but inside a secure entry
    record.end("transferred", summary="고객이 카드번호 4532 0151 1283 0366 로 결제 문의, 연락처 010-1234-5678")


def assert_clean(dump: str) -> None:
    for secret in SECRETS:
        assert secret not in dump, secret
    for masked in ("[카드번호 ****0366]", "[주민등록번호]", "[계좌번호 ****6789]", "[전화번호 ****5678]", "[이메일]",
                   "[주소]", "[비밀번호]"):
        assert masked in dump, masked


def dtmf_digits(events: list[tuple[str, dict]]) -> list[str | None]:
    return [detail["digit"] for kind, detail in events if kind == "dtmf"]


def test_spool_holds_only_masked_values(tmp_path: Path) -> None:
    store = CallStore(None, tmp_path)  # no database: every record goes to the disk spool
    play_call(store, "spool-call")
    assert store.flush(10)
    store.close()
    spooled = [p for p in tmp_path.rglob("*") if p.is_file()]
    dump = "\n".join(p.read_text(encoding="utf-8") for p in spooled)
    assert "spool-call" in dump
    assert_clean(dump)
    events = [json.loads(line) for line in dump.splitlines() if line.startswith("{")]
    assert dtmf_digits([(e["kind"], e["detail"]) for e in events if e.get("op") == "event"]) == \
        ["0", None, None, None, None, None]


def test_database_rows_hold_only_masked_values(db: Database, tmp_path: Path) -> None:
    store = CallStore(db, tmp_path)
    play_call(store, "db-call")
    assert store.flush(10)
    store.close()
    with db.connection() as conn:
        rows = [conn.execute(f"SELECT * FROM {table} WHERE call_id = %s", ("db-call",)).fetchall()
                for table in ("calls", "turns", "call_events")]
        events = conn.execute("SELECT kind, detail FROM call_events WHERE call_id = %s ORDER BY seq",
                              ("db-call",)).fetchall()
    assert rows[0] and len(rows[1]) == len(CALLER_SAYS) + 3
    assert "[키패드 입력]" in [r["text"] for r in rows[1]]
    assert_clean(json.dumps(rows, ensure_ascii=False, default=str))
    assert dtmf_digits([(e["kind"], e["detail"]) for e in events]) == ["0", None, None, None, None, None]
    assert all(e["detail"].get("masked") for e in events if e["kind"] == "dtmf" and e["detail"]["digit"] is None)
    assert rows[0][0]["caller"] == "01055550000"  # kept: how a deletion request finds the calls
