"""Escalation rules one by one, each with a case that must fire and one that must not, the priority the queue
gets, the time and repeat limits at their exact edges, and the summary a human reads when the call arrives."""

from __future__ import annotations

import pytest
from dialog_support import FakeClock

from agent.dialog import escalation as e
from agent.dialog import intents
from agent.dialog.packs import load_pack
from agent.dialog.policy import CallInfo
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState


def state(clock: FakeClock | None = None) -> DialogState:
    return DialogState(call=CallInfo(call_id="c"), pack=load_pack("ecommerce"), clock=clock or FakeClock())


def manager(**settings: float) -> e.EscalationManager:
    return e.EscalationManager(EscalationSettings(**settings))


def test_time_rule_edges():
    assert not e.call_too_long(599.9, 600.0) and e.call_too_long(600.0, 600.0)
    assert e.seconds_to_time_limit(100.0, 600.0) == 500.0 and e.seconds_to_time_limit(700.0, 600.0) == 0.0


@pytest.mark.parametrize("text, reason, priority", [
    ("상담원 연결해 주세요", e.CALLER_REQUESTED, 2),
    ("소송 걸 거예요", e.SENSITIVE_TOPIC, 3),
    ("환불해 주세요", e.SENSITIVE_TOPIC, 3),
    ("돈 돌려줘요", e.SENSITIVE_TOPIC, 3),
])
def test_each_rule_fires_with_its_reason_and_priority(text, reason, priority):
    st = state()
    esc = manager().check_turn(text, st)
    assert (esc.reason, esc.priority) == (reason, priority)
    assert st.tried[-1] == f"전환 사유: {e.REASON_KO[reason]}"
    assert esc.summary.endswith(f"전환 사유: {e.REASON_KO[reason]}.")


@pytest.mark.parametrize("text", [
    "배송 언제 와요?", "환불은 며칠 걸려요?", "소송할 생각은 없어요", "환불 받았어요 감사합니다", "환불 잘 됐어요",
    "보상은 아니고 그냥 물어본 거예요", "다른 사람이 대신 주문했는데 배송 조회 되나요?",
])
def test_and_must_not_fire(text):
    assert manager().check_turn(text, state()) is None


def test_a_later_occurrence_of_a_sensitive_word_still_counts():
    m = manager()
    assert not m.sensitive("소송은 아니고요")
    assert m.sensitive("소송은 아니고요 그래도 소송 걸 거예요")
    assert m.sensitive("환불 받았는데 또 환불 원해요 진짜로") is True


def test_a_sensitive_word_settled_only_right_after_it():
    m = manager()
    assert not m.sensitive("환불 완료 문자 왔어요")
    assert m.sensitive("환불 해 주셔야 합니다 아직 못 받았어요")  # "받았" is too far after the word


def test_pack_words_join_the_base_list_case_blind():
    m = e.EscalationManager(EscalationSettings(), sensitive_keywords=("Chargeback",))
    assert m.sensitive("chargeback 하겠습니다") and not manager().sensitive("chargeback 하겠습니다")
    assert m.sensitive("변호사 선임할게요")  # the base words stay


def test_sentiment_transfers_only_on_a_sustained_trend_at_the_threshold():
    st = state()
    m = manager(sentiment_threshold=-0.7)
    assert m.check_turn("진짜 최악이네요 너무 짜증나요", st) is None
    esc = m.check_turn("진짜 최악이네요 너무 짜증나요", st)
    assert esc is not None and (esc.reason, esc.priority) == (e.NEGATIVE_SENTIMENT, 3)
    assert m.moods == [-1.0, -1.0]
    lenient = manager(sentiment_threshold=-0.9)
    assert [lenient.check_turn("진짜 최악이네요 너무 짜증나요", st) for _ in range(2)] == [None, None]


def test_the_time_limit_fires_once_from_the_limit_on():
    clock = FakeClock()
    st = state(clock)
    st.started_at = clock.now
    m = manager(max_call_s=600.0)
    clock.now += 599.0
    assert m.check_time(st) is None and m.check_turn("배송 조회요", st) is None
    clock.now += 1.0
    esc = m.check_time(st)
    assert (esc.reason, esc.priority) == (e.CALL_TOO_LONG, 5)
    assert m.check_time(st) is None and m.check_turn("배송 조회요", st) is None


def test_repeated_failure_counts_per_intent_and_resets_when_resolved():
    st = state()
    m = manager(repeat_limit=3)
    assert m.note_outcome("delivery", False, st) is None
    assert m.note_outcome("delivery", False, st) is None
    assert m.note_outcome("faq", False, st) is None
    assert (m.failures("delivery"), m.failures("faq"), m.failures("other")) == (2, 1, 0)
    assert m.note_outcome("delivery", True, st) is None and m.failures("delivery") == 0
    for _ in range(2):
        assert m.note_outcome("delivery", False, st) is None
    esc = m.note_outcome("delivery", False, st)
    assert (esc.reason, esc.priority) == (e.REPEATED_FAILURE, 3)
    assert m.note_outcome("delivery", False, st).reason == e.REPEATED_FAILURE  # past the limit it keeps firing


def test_llm_and_language_escalations():
    st = state()
    m = manager()
    assert (m.llm_requested(st, urgent=True).priority, m.llm_requested(st, urgent=False).priority) == (1, 5)
    assert m.llm_requested(st, urgent=False).reason == e.LLM_TOOL
    lang = m.language_support(st)
    assert (lang.reason, lang.priority) == (e.LANGUAGE_SUPPORT, 5)
    assert lang.summary.endswith("전환 사유: 영어 상담 필요.")


def test_summary_for_an_empty_call():
    assert e.extractive_summary(state()) == "고객 문의: 문의 내용 미확인, 본인 확인 전. 시도한 조치 없음."


def test_summary_of_a_full_call_is_what_the_human_reads():
    st = state()
    st.intents += [intents.ORDER_STATUS, intents.AFFIRM, intents.DELIVERY, intents.ORDER_STATUS, intents.HUMAN,
                   intents.THANKS, "made_up_intent"]
    st.slots["order_id"] = "123456"
    st.verify("C1001", "caller_id")
    for what in ("주문 조회", "배송 조회", "주문 조회 2", "전환 사유: 이전 것", "반품 안내", "FAQ"):
        st.note(what)
    assert e.extractive_summary(st, e.NEGATIVE_SENTIMENT) == (
        "고객 문의: 주문 상태 문의, 배송 문의, 일반 문의, 주문번호 123456, 본인 확인 완료. "
        "시도: 배송 조회, 주문 조회 2, 반품 안내, FAQ. 전환 사유: 고객 불만이 큼.")
    assert e.extractive_summary(st, "made_up").endswith("전환 사유: made_up.")


def test_summary_masks_personal_data():
    st = state()
    st.note("카드 4532 0151 1283 0366 확인 요청")
    summary = e.extractive_summary(st)
    assert "0151" not in summary and "[카드번호 ****0366]" in summary


def test_every_occurrence_of_a_sensitive_word_is_read_in_order():
    m = manager()
    assert m.sensitive("소송 걸 거예요 합의는 소송 아니고요")          # the first one counts, the last is denied
    assert m.sensitive("소송 아니고요 그래도 소송 걸 거예요 그러니까 합의면 소송은 아니에요")  # only the middle one
    assert not m.sensitive("소송 아니고 소송은 아니에요")


def test_the_verification_note_is_not_repeated_as_something_tried():
    st = state()
    st.note("주문 조회")
    st.verify("C1001", "name_phone_last4")
    st.note("배송 조회")
    assert e.extractive_summary(st) == "고객 문의: 문의 내용 미확인, 본인 확인 완료. 시도: 주문 조회, 배송 조회."
