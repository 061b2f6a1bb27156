"""Every escalation rule fires with its stable reason code, priority and a Korean summary."""

from __future__ import annotations

import pytest
from dialog_support import FakeClock, scripted

from agent.dialog import escalation
from agent.dialog.policy import CallInfo, Escalate, Say


def run(conv, *lines: str) -> list:
    events: list = []
    for line in lines:
        events.extend(conv.respond(line, "asr"))
    return events


def escalations(events: list) -> list[Escalate]:
    return [e for e in events if isinstance(e, Escalate)]


@pytest.mark.parametrize("text", ["상담원 연결해 주세요", "사람이랑 통화하고 싶어요", "직원 바꿔 주세요",
                                  "매니저 불러 주세요", "책임자 나오라고 하세요", "I want to talk to a human",
                                  "agent please", "connect me to a representative", "operator"])
def test_explicit_request(text: str) -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    [esc] = escalations(run(conv, text))
    assert esc.reason == escalation.CALLER_REQUESTED
    assert esc.priority == escalation.PRIORITY_IMMEDIATE
    assert esc.summary


def test_asking_whether_it_is_an_ai_is_not_a_request() -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    assert not escalations(run(conv, "AI 상담원이세요?"))


@pytest.mark.parametrize("text", ["소송 걸 거예요", "변호사랑 상의해 볼게요", "환불해 주세요", "보상 받을 수 있나요",
                                  "이것 때문에 피해를 봤어요"])
def test_sensitive_topics(text: str) -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    [esc] = escalations(run(conv, text))
    assert esc.reason == escalation.SENSITIVE_TOPIC and esc.priority == escalation.PRIORITY_HIGH


def test_refund_question_is_not_escalated() -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    assert not escalations(run(conv, "환불은 보통 며칠 걸려요?"))


def test_pack_specific_sensitive_words() -> None:
    conv = scripted(None, pack="banking").open(CallInfo(call_id="c"))
    [esc] = escalations(run(conv, "보이스피싱 당한 것 같아요"))
    assert esc.reason == escalation.SENSITIVE_TOPIC


def test_negative_sentiment() -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    [esc] = escalations(run(conv, "진짜 최악이네요 너무 짜증나요"))
    assert esc.reason == escalation.NEGATIVE_SENTIMENT


def test_sentiment_threshold_is_configurable() -> None:
    strict = scripted(None, escalation={"sentiment_threshold": -0.1}).open(CallInfo(call_id="c"))
    assert escalations(run(strict, "좀 불편하네요"))[0].reason == escalation.NEGATIVE_SENTIMENT
    default = scripted(None).open(CallInfo(call_id="c"))
    assert not escalations(run(default, "좀 불편하네요"))


def test_call_too_long(clock: FakeClock) -> None:
    conv = scripted(None, clock=clock).open(CallInfo(call_id="c"))
    assert not escalations(run(conv, "배송비 얼마예요?"))
    clock.now += 899
    assert not escalations(run(conv, "새벽배송 되나요?"))
    clock.now += 2
    [esc] = escalations(run(conv, "포인트는요?"))
    assert esc.reason == escalation.CALL_TOO_LONG and esc.priority == escalation.PRIORITY_NORMAL


def test_repeated_failure_after_three_unresolved_turns() -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    assert not escalations(run(conv, "블라블라", "음"))
    events = run(conv, "어")
    [esc] = escalations(events)
    assert esc.reason == escalation.REPEATED_FAILURE
    assert any(isinstance(e, Say) for e in events)  # still apologises before the hand-over
    assert "의도 파악 실패" in esc.summary


def test_repeat_limit_is_configurable() -> None:
    conv = scripted(None, escalation={"repeat_limit": 1}).open(CallInfo(call_id="c"))
    assert escalations(run(conv, "블라블라"))[0].reason == escalation.REPEATED_FAILURE


def test_summary_mentions_intent_order_and_what_was_tried(db) -> None:
    conv = scripted(db).open(CallInfo(call_id="c", caller="01012345678"))
    run(conv, "주문번호 123456 배송 조회해 주세요")
    [esc] = escalations(run(conv, "상담원 연결해 주세요"))
    assert "주문번호 123456" in esc.summary
    assert "배송 문의" in esc.summary and "주문 조회 성공" in esc.summary
    assert "상담원 연결을 요청" in esc.summary
    assert conv.summary().startswith("고객 문의:")
