"""The per-call record against a store that keeps what it is given: the rows a call writes (start, answer, turns
numbered from 1, events numbered apart, one end), personal data masked at this edge, and keypad keys stored as
pressed only when they were menu keys (three in a row, or any after the agent asked for a secret, are masked)."""

from __future__ import annotations

from agent.call.channel import ChannelInfo
from agent.call.record import OWNER_VARIABLE, CallRecord
from tests.call.fast_fakes import UUID, FakeStore

PHONE = "010-1234-5678"
MASKED = "[전화번호 ****5678]"


def _record(owner: str = "") -> tuple[CallRecord, FakeStore]:
    store = FakeStore()
    channel = ChannelInfo(uuid=UUID, caller="01055550000", destination="1588", variables={
        "callagent_industry": "banking", "callagent_note": f"회신 {PHONE}", "sip_from_display": "홍길동",
        "other": "not stored"})
    if not owner:  # as the tests and tools that build a record without a controller do
        return CallRecord(store, channel), store  # type: ignore[arg-type]
    return CallRecord(store, channel, owner=owner), store  # type: ignore[arg-type]


def test_the_start_row_and_the_answer_row(tmp_path):
    record, store = _record(owner="10.0.0.2:8084")
    ((op, start),) = store.ops
    assert op == "call_start" and start["call_id"] == UUID and start["caller"] == "01055550000"
    assert start["destination"] == "1588" and start["industry"] == "banking" and start["answered_at"] is None
    assert start["started_at"]
    assert start["variables"] == {"callagent_industry": "banking", "callagent_note": f"회신 {MASKED}",
                                  "sip_from_display": "홍길동", OWNER_VARIABLE: "10.0.0.2:8084"}
    record.answered()
    op, answered = store.ops[1]
    assert op == "call_start" and answered["answered_at"] and answered["started_at"] == start["started_at"]
    assert answered["variables"] == start["variables"]


def test_without_an_owner_no_owner_variable_is_stored():
    _, store = _record()
    assert OWNER_VARIABLE not in store.ops[0][1]["variables"]


def test_turns_are_numbered_and_masked(tmp_path):
    record, store = _record()
    assert [record.next_turn_seq() for _ in range(3)] == [1, 2, 3]
    record.turn(4, "caller", f"번호는 {PHONE}이에요", started_at="t0", source="asr",
                detail={"alternatives": [PHONE]}, asr_ms=80)
    record.turn(5, "agent", f"{PHONE}로 바꿨어요", started_at="t1", heard_text=f"{PHONE}로",
                summary=f"연락처 {PHONE}", escalation_reason=PHONE, transfer_target=PHONE, interrupted=True)
    caller, agent = store.turns()
    assert caller == {"call_id": UUID, "seq": 4, "speaker": "caller", "text": f"번호는 {MASKED}이에요",
                      "started_at": "t0", "source": "asr", "detail": {"alternatives": [MASKED]}, "asr_ms": 80}
    assert agent["text"] == f"{MASKED}로 바꿨어요" and agent["heard_text"] == f"{MASKED}로"
    assert agent["summary"] == f"연락처 {MASKED}" and agent["escalation_reason"] == MASKED
    assert agent["transfer_target"] == MASKED and agent["interrupted"] is True


def test_a_keypad_turn_is_stored_masked_whatever_it_was():
    record, store = _record()
    record.turn(1, "caller", "1234", started_at="t", source="dtmf")
    record.turn(2, "caller", "12", started_at="t", source="dtmf")
    record.turn(3, "caller", "1234", started_at="t", source="asr")
    assert [t["text"] for t in store.turns()] == ["[키패드 입력]", "12", "1234"]


def test_events_are_numbered_apart_from_turns_and_masked():
    record, store = _record()
    record.turn(record.next_turn_seq(), "caller", "네", started_at="t")
    record.event("backchannel", text=f"네 {PHONE}")
    record.event("no_input", prompts_used=1)
    first, second = store.events()
    assert (first["seq"], first["kind"], first["detail"]) == (1, "backchannel", {"text": f"네 {MASKED}"})
    assert (second["seq"], second["kind"], second["detail"]) == (2, "no_input", {"prompts_used": 1})
    assert first["call_id"] == UUID and first["at"]


def test_the_end_is_written_once_and_masked():
    record, store = _record()
    record.end("transferred", summary=f"회신 {PHONE}", transfer_target="human XML q", hangup_cause=None)
    record.end("caller_hangup")
    (end,) = store.ends()
    assert record.ended and end["end_reason"] == "transferred" and end["summary"] == f"회신 {MASKED}"
    assert end["transfer_target"] == "human XML q" and end["hangup_cause"] is None and end["ended_at"]
    assert end["call_id"] == UUID


def test_a_menu_key_is_stored_as_pressed_when_something_else_follows():
    record, store = _record()
    record.event("dtmf", digit="2", entry=True)
    assert store.events() == []  # held: it may be the first of a typed number
    record.event("no_input")
    key, other = store.events()
    assert (key["seq"], key["kind"], key["detail"]) == (1, "dtmf", {"digit": "2"})
    assert (other["seq"], other["kind"]) == (2, "no_input")


def test_three_keys_in_a_row_are_a_number_and_stored_without_digits():
    record, store = _record()
    for d in "1234":
        record.event("dtmf", digit=d, entry=True)
    record.end("caller_hangup")
    keys = store.events("dtmf")
    assert [k["seq"] for k in keys] == [1, 2, 3, 4]
    assert all(k["call_id"] == UUID and k["at"] for k in keys)
    assert all(k["detail"] == {"digit": None, "entry": True, "masked": True} for k in keys)


def test_keys_after_the_agent_asks_for_a_secret_are_masked_until_the_caller_speaks():
    record, store = _record()
    record.turn(1, "agent", "카드 번호를 입력해 주세요", started_at="t")
    record.event("dtmf", digit="7")
    assert store.events("dtmf")[0]["detail"] == {"digit": None, "masked": True}
    record.event("dtmf", digit="#")  # the end of the secure entry
    record.turn(2, "caller", "다 눌렀어요", started_at="t")
    record.event("dtmf", digit="1")
    record.turn(3, "caller", "네", started_at="t")  # speaking releases a held menu key
    assert store.events("dtmf")[-1]["detail"] == {"digit": "1"}


def test_a_turn_of_the_caller_releases_held_keys_before_it_is_written():
    record, store = _record()
    record.event("dtmf", digit="5")
    record.turn(1, "caller", "상담원이요", started_at="t")
    assert [op for op, _ in store.ops[1:]] == ["event", "turn"]
    record.event("dtmf", digit="6")
    record.turn(2, "agent", "네", started_at="t")  # the agent speaking does not end a keypad entry
    assert [op for op, _ in store.ops[1:]] == ["event", "turn", "turn"]
    record.end("agent_hangup")
    assert [op for op, _ in store.ops[1:]] == ["event", "turn", "turn", "event", "call_end"]
    assert store.events("dtmf")[-1]["detail"] == {"digit": "6"}


def test_a_key_without_a_digit_is_stored_empty():
    record, store = _record()
    record.event("dtmf")
    record.event("no_input")
    assert store.events("dtmf")[0]["detail"] == {"digit": ""}
