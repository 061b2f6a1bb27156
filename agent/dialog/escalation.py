"""When to hand the caller to a human (plan §3-4), with a stable reason code and a queue priority, and the
extractive Korean summary the human sees. Both policies run every caller turn through `check_turn`; the
call session also asks `check_time` on a timer so the time limit fires while the caller is silent.

The rules read the sentence, not a keyword: a human word needs a request ("다른 사람이 대신 주문했는데" is not
one), a request taken back ("상담원 연결 안 해도 돼요") is none, a sensitive word negated or already settled
("소송할 생각은 없어요", "환불 받았어요") does not count, and sentiment transfers only on a sustained trend.

Priority: 1 = most urgent … 9 = least; 5 is normal (the controller exports it as `ai_priority`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from agent.dialog import guardrails, intents, sentiment
from agent.dialog.policy import Escalate
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState

log = logging.getLogger(__name__)

CALLER_REQUESTED = "caller_requested"
REPEATED_FAILURE = "repeated_failure"
NEGATIVE_SENTIMENT = "negative_sentiment"
SENSITIVE_TOPIC = "sensitive_topic"
CALL_TOO_LONG = "call_too_long"
LLM_TOOL = "llm_tool"
LANGUAGE_SUPPORT = "language_support"  # an English caller asked what only a Korean answer exists for

PRIORITY_URGENT = 1
PRIORITY_IMMEDIATE = 2  # plan: 즉시
PRIORITY_HIGH = 3  # plan: 높음
PRIORITY_NORMAL = 5  # plan: 보통 / 일반

PRIORITIES = {
    CALLER_REQUESTED: PRIORITY_IMMEDIATE,
    REPEATED_FAILURE: PRIORITY_HIGH,
    NEGATIVE_SENTIMENT: PRIORITY_HIGH,
    SENSITIVE_TOPIC: PRIORITY_HIGH,
    CALL_TOO_LONG: PRIORITY_NORMAL,
    LLM_TOOL: PRIORITY_NORMAL,
    LANGUAGE_SUPPORT: PRIORITY_NORMAL,
}
REASON_KO = {
    CALLER_REQUESTED: "고객이 상담원 연결을 요청",
    REPEATED_FAILURE: "같은 문의가 해결되지 않고 반복",
    NEGATIVE_SENTIMENT: "고객 불만이 큼",
    SENSITIVE_TOPIC: "법적·금전적 민감 주제",
    CALL_TOO_LONG: "통화 시간 초과",
    LLM_TOOL: "AI 상담원이 상담원 연결을 판단",
    LANGUAGE_SUPPORT: "영어 상담 필요",
}
BASE_SENSITIVE = ("소송", "변호사", "환불", "보상", "피해", "lawsuit", "lawyer", "attorney", "refund",
                  "compensation")
# "환불" asked about (timing, policy) is an FAQ; demanded, it is a money action for a human.
_INFO_ONLY = re.compile(r"정책|규정|기간|며칠|언제|얼마나|걸리|걸려|방법|어떻게|조건|되나요|policy|how long|when")
_ASKED_ABOUT = ("환불", "refund", "해지")
# Right after a sensitive word: it is denied ("소송할 생각은 없어요") or already settled ("환불 받았어요").
_NOT_WANTED = re.compile(r"^.{0,10}?(없어|없습|없고|않|아니|안\s?할|안\s?해|no\b|not\b)")
_SETTLED = re.compile(r"^.{0,6}?(받았|됐어|됐습|되었|완료|처리\s?됐|들어왔|잘\s?됐)")
_ALREADY_DONE = re.compile(r"(받았|처리\s?됐|처리\s?되었|완료\s?됐|완료\s?되었|들어왔)(어요|습니다|네요|고|는데)?"
                           r"(\s*감사|[.!]?\s*$)")


def call_too_long(elapsed_s: float, max_call_s: float) -> bool:
    """The time rule as a pure function of the call's age: true from `max_call_s` on."""
    return elapsed_s >= max_call_s


def seconds_to_time_limit(elapsed_s: float, max_call_s: float) -> float:
    """How long a timer should wait before `check_time` can fire (0 when it is due)."""
    return max(0.0, max_call_s - elapsed_s)

INTENT_KO = {
    intents.ORDER_STATUS: "주문 상태 문의", intents.DELIVERY: "배송 문의", intents.RETURN_REQUEST: "반품/교환 문의",
    intents.UPDATE_INFO: "고객 정보 변경", intents.ACCOUNT: "계좌 문의", intents.FAQ: "일반 문의",
    intents.HUMAN: "상담원 연결 요청", intents.UNKNOWN: "의도 파악 실패",
}


@dataclass
class EscalationManager:
    settings: EscalationSettings
    sensitive_keywords: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        words = tuple(dict.fromkeys(BASE_SENSITIVE + tuple(self.sensitive_keywords)))
        self._sensitive = tuple(w.lower() for w in words)
        self._failures: dict[str, int] = {}
        self.moods: list[float] = []  # per-turn sentiment, oldest first
        self._timed_out = False

    def check_turn(self, text: str, state: DialogState) -> Escalate | None:
        """Rules that look at the caller's words and the clock, before any answer is attempted."""
        t = intents.normalise(text)
        if intents.wants_human(t):
            return self._escalate(CALLER_REQUESTED, state)
        if guardrails.wants_money_moved(t) and not _ALREADY_DONE.search(t):
            return self._escalate(SENSITIVE_TOPIC, state)
        if self.sensitive(t):
            return self._escalate(SENSITIVE_TOPIC, state)
        self.moods.append(sentiment.score(t))
        if sentiment.sustained_negative(self.moods, self.settings.sentiment_threshold):
            log.info("negative sentiment trend %.2f", sentiment.trend(self.moods))
            return self._escalate(NEGATIVE_SENTIMENT, state)
        return self.check_time(state)

    def check_time(self, state: DialogState) -> Escalate | None:
        """The time limit, for the call session's timer as well as each turn; fires once per call."""
        if self._timed_out or not call_too_long(state.elapsed_s(), self.settings.max_call_s):
            return None
        self._timed_out = True
        return self._escalate(CALL_TOO_LONG, state)

    def sensitive(self, t: str) -> bool:
        """A sensitive word the caller means: not denied, not already settled, not a how-long question."""
        for word in self._sensitive:
            start = t.find(word)
            while start >= 0:
                after = t[start + len(word):]
                asked = word in _ASKED_ABOUT and _INFO_ONLY.search(t)
                if not (asked or _NOT_WANTED.match(after) or _SETTLED.match(after)):
                    return True
                start = t.find(word, start + len(word))
        return False

    def note_outcome(self, intent: str, resolved: bool, state: DialogState) -> Escalate | None:
        """Counts unresolved turns per intent; the `repeat_limit`-th one escalates."""
        if resolved:
            self._failures[intent] = 0
            return None
        self._failures[intent] = self._failures.get(intent, 0) + 1
        if self._failures[intent] >= self.settings.repeat_limit:
            return self._escalate(REPEATED_FAILURE, state)
        return None

    def failures(self, intent: str) -> int:
        return self._failures.get(intent, 0)

    def language_support(self, state: DialogState) -> Escalate:
        return self._escalate(LANGUAGE_SUPPORT, state)

    def llm_requested(self, state: DialogState, urgent: bool) -> Escalate:
        return self._escalate(LLM_TOOL, state, PRIORITY_URGENT if urgent else PRIORITY_NORMAL)

    def _escalate(self, reason: str, state: DialogState, priority: int | None = None) -> Escalate:
        state.note(f"전환 사유: {REASON_KO[reason]}")
        return Escalate(reason=reason, summary=extractive_summary(state, reason),
                        priority=PRIORITIES[reason] if priority is None else priority)


def extractive_summary(state: DialogState, reason: str | None = None) -> str:
    """One or two Korean sentences: what the caller wanted, the order number, what was tried, why handed over."""
    wanted = [INTENT_KO.get(i, "일반 문의") for i in state.intents if i not in (intents.AFFIRM, intents.DENY,
                                                                           intents.THANKS, intents.GOODBYE)]
    topic = ", ".join(dict.fromkeys(w for w in wanted if w != "상담원 연결 요청")) or "문의 내용 미확인"
    parts = [f"고객 문의: {topic}"]
    if state.slots.get("order_id"):
        parts.append(f"주문번호 {state.slots['order_id']}")
    parts.append("본인 확인 완료" if state.verified_customer_id else "본인 확인 전")
    first = ", ".join(parts) + "."
    tried = [t for t in state.tried if not t.startswith("전환 사유") and t != "본인 확인 완료"]
    second = f"시도: {', '.join(tried[-4:])}." if tried else "시도한 조치 없음."
    if reason:
        second += f" 전환 사유: {REASON_KO.get(reason, reason)}."
    return guardrails.redact(f"{first} {second}")
