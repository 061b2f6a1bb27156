"""Every escalation rule fires with its stable reason code, priority and a Korean summary."""

from __future__ import annotations

import pytest
from dialog_support import FakeClock, scripted

from agent.dialog import escalation, sentiment
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


def test_one_angry_turn_does_not_transfer_but_a_sustained_one_does() -> None:
    conv = patient()
    assert not escalations(run(conv, "진짜 최악이네요 너무 짜증나요"))
    [esc] = escalations(run(conv, "몇 번을 말해요 정말 어이없네요"))
    assert esc.reason == escalation.NEGATIVE_SENTIMENT and esc.priority == escalation.PRIORITY_HIGH


def patient(**escalation_settings: object):
    """A conversation whose only transfers can be the sentiment rule's (no repeat limit in reach)."""
    return scripted(None, escalation={"repeat_limit": 20, **escalation_settings}).open(CallInfo(call_id="c"))


def test_frustration_said_once_or_twice_is_answered_not_transferred() -> None:
    conv = patient()
    assert not escalations(run(conv, "너무 답답해요"))
    assert not escalations(run(conv, "왜 이렇게 안 되죠 너무 답답해요"))


def test_thanks_between_complaints_breaks_the_trend() -> None:
    conv = patient()
    assert not escalations(run(conv, "진짜 최악이네요 너무 짜증나요"))
    assert not escalations(run(conv, "아 그렇군요 정말 감사합니다 너무 친절하시네요"))
    assert not escalations(run(conv, "그래도 좀 짜증나요"))


def test_praise_is_positive_and_never_transfers() -> None:
    # A rule that lost its sign would read this caller as furious.
    assert sentiment.score("정말 감사합니다 너무 친절하시네요") >= 0.5
    conv = patient(sentiment_threshold=-0.1)
    for _ in range(4):
        assert not escalations(run(conv, "정말 감사합니다 너무 친절하시네요"))
    assert conv.escalation.moods == [1.0] * 4


@pytest.mark.parametrize(("text", "sign"), [
    ("불만 없어요", 1), ("화가 안 나요", 1), ("안 좋아요", -1), ("친절하지 않네요", -1), ("최악은 아니에요", 1),
    ("너무 답답해요", -1), ("만족해요", 1), ("불만족이에요", -1),
])
def test_negation_turns_the_sign(text: str, sign: int) -> None:
    assert sentiment.score(text) * sign > 0


def test_trend_is_a_weighted_mean_over_turns() -> None:
    assert sentiment.trend([]) == 0.0
    assert sentiment.trend([-1.0]) == pytest.approx(-0.6)
    assert sentiment.trend([-1.0, -1.0]) == pytest.approx(-0.84)
    assert sentiment.trend([-1.0, 1.0]) == pytest.approx(0.36)
    assert not sentiment.sustained_negative([-1.0], -0.5)
    assert sentiment.sustained_negative([-1.0, -1.0], -0.7)
    assert not sentiment.sustained_negative([-1.0, -1.0], -0.9)
    assert not sentiment.sustained_negative([-1.0, -1.0, 0.2], -0.1)


def test_sentiment_threshold_is_configurable() -> None:
    strict = patient(sentiment_threshold=-0.1)
    assert not escalations(run(strict, "좀 불편하네요"))
    assert escalations(run(strict, "좀 불편하네요"))[0].reason == escalation.NEGATIVE_SENTIMENT
    default = patient()
    assert not escalations(run(default, "좀 불편하네요", "좀 불편하네요", "좀 불편하네요"))


def test_call_too_long(clock: FakeClock) -> None:
    conv = scripted(None, clock=clock).open(CallInfo(call_id="c"))
    assert not escalations(run(conv, "배송비 얼마예요?"))
    clock.now += 899
    assert not escalations(run(conv, "새벽배송 되나요?"))
    clock.now += 2
    [esc] = escalations(run(conv, "포인트는요?"))
    assert esc.reason == escalation.CALL_TOO_LONG and esc.priority == escalation.PRIORITY_NORMAL


def test_time_limit_fires_on_the_timer_without_the_caller_speaking(clock: FakeClock) -> None:
    conv = scripted(None, clock=clock).open(CallInfo(call_id="c"))
    assert not escalations(run(conv, "배송비 얼마예요?"))
    clock.now += 899.5
    assert conv.escalation.check_time(conv.state) is None
    assert escalation.seconds_to_time_limit(conv.state.elapsed_s(), 900) == pytest.approx(0.5)
    clock.now += 0.5
    esc = conv.escalation.check_time(conv.state)
    assert esc is not None and esc.reason == escalation.CALL_TOO_LONG
    assert "통화 시간 초과" in esc.summary
    assert conv.escalation.check_time(conv.state) is None  # once per call


@pytest.mark.parametrize(("elapsed", "limit", "due"), [(0, 900, False), (899.9, 900, False), (900, 900, True),
                                                       (1200, 900, True), (30, 30, True)])
def test_time_rule_is_a_pure_function_of_elapsed_time(elapsed: float, limit: float, due: bool) -> None:
    assert escalation.call_too_long(elapsed, limit) is due
    assert (escalation.seconds_to_time_limit(elapsed, limit) == 0) is due


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


# What a caller says on one turn, and whether it must go to a human (reason) or must not (None).
MUST: list[tuple[str, str]] = [
    ("상담원 연결해 주세요", escalation.CALLER_REQUESTED),
    ("상담원이요", escalation.CALLER_REQUESTED),
    ("상담원", escalation.CALLER_REQUESTED),
    ("그냥 사람이랑 얘기할래요", escalation.CALLER_REQUESTED),
    ("AI 말고 상담원 연결해 주세요", escalation.CALLER_REQUESTED),
    ("상담원 연결 안 되나요?", escalation.CALLER_REQUESTED),
    ("담당자 좀 바꿔 주세요", escalation.CALLER_REQUESTED),
    ("상담사랑 통화하고 싶어요", escalation.CALLER_REQUESTED),
    ("직원분이랑 이야기하고 싶은데요", escalation.CALLER_REQUESTED),
    ("can I speak to an agent", escalation.CALLER_REQUESTED),
    ("transfer me to an operator please", escalation.CALLER_REQUESTED),
    ("소비자원에 신고하고 소송 걸 거예요", escalation.SENSITIVE_TOPIC),
    ("변호사 통해서 법적으로 처리할게요", escalation.SENSITIVE_TOPIC),
    ("환불이요", escalation.SENSITIVE_TOPIC),
    ("돈 돌려 주세요 환불해 주세요", escalation.SENSITIVE_TOPIC),
    ("배송이 늦어서 피해 본 거 보상해 주세요", escalation.SENSITIVE_TOPIC),
    ("I want a refund", escalation.SENSITIVE_TOPIC),
    ("my lawyer will call you", escalation.SENSITIVE_TOPIC),
]
MUST_NOT: list[str] = [
    "다른 사람이 대신 주문했는데 배송 조회 되나요?",
    "남편이 대신 주문했어요",
    "사람이 주문한 거 조회해 주세요",
    "직원이 불친절했어요",
    "사람들이 다 그러던데요",
    "아까 상담원이 내일 온다고 했어요",
    "담당자가 전화 준다고 했는데 안 왔어요",
    "상담원분 성함이 뭐예요?",
    "상담원 연결 안 해도 돼요",
    "상담원 말고 그냥 여기서 할게요",
    "상담원 연결은 필요 없어요",
    "no need for an agent",
    "AI 상담원이세요?",
    "너무 답답해요",
    "정말 감사합니다 너무 친절하시네요",
    "좀 불편하네요",
    "환불은 보통 며칠 걸려요?",
    "환불 기간이 어떻게 되나요?",
    "환불 받았어요 감사합니다",
    "환불 처리됐어요",
    "소송할 생각은 없어요",
    "반품하고 싶어요",
    "배송 언제 와요?",
    "주문번호 123456 배송 조회해 주세요",
    "불만 없어요",
]


@pytest.mark.parametrize(("text", "reason"), MUST)
def test_must_escalate(text: str, reason: str) -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    [esc] = escalations(run(conv, text))
    assert esc.reason == reason


@pytest.mark.parametrize("text", MUST_NOT)
def test_must_not_escalate(text: str, db) -> None:
    conv = scripted(db).open(CallInfo(call_id="c", caller="01012345678"))
    assert not escalations(run(conv, text))


def test_the_list_is_long_enough() -> None:
    assert len(MUST) + len(MUST_NOT) >= 40 and len(MUST) >= 15 and len(MUST_NOT) >= 20
