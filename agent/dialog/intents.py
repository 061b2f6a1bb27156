"""Intent from normalised Korean/English keywords: what a caller turn is about, for the scripted policy and
for counting unresolved repeats. Order matters: the first rule whose keywords match wins.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

HUMAN = "human"
RETURN_REQUEST = "return_request"
ORDER_STATUS = "order_status"
DELIVERY = "delivery"
UPDATE_INFO = "update_info"
ACCOUNT = "account"
FAQ = "faq"
GOODBYE = "goodbye"
THANKS = "thanks"
AFFIRM = "affirm"
DENY = "deny"
UNKNOWN = "unknown"

# Caller asks about a policy or how-to rather than asking us to act: answer from the KB.
_QUESTION = re.compile(
    r"정책|규정|방법|어떻게|어떡|가능한가|가능해요|가능할까|되나요|돼요\?|되요\?|얼마나|며칠|기간|언제까지|"
    r"조건|수수료|비용|배송비|알려\s*주|뭐예요|무엇|무슨|what|how|policy|can i",
    re.I,
)

_HUMAN_WORDS = re.compile(
    r"사람|상담원|상담사|직원|매니저|책임자|담당자|\bhuman\b|\bagent\b|representative|operator|real person",
    re.I,
)
# A human word alone is a mention ("다른 사람이 대신 주문했는데", "직원이 불친절했어요"); a request needs a verb
# that asks for the person, or the human word said on its own ("상담원이요", "operator").
_HUMAN_REQUEST = re.compile(
    r"연결|바꿔|바꾸|통화|불러|부르|나오|얘기|이야기|말하|말할|대화|상담\s*(하|받|할)|넘겨|돌려\s*주|원해|원합|"
    r"주세요|해\s*줘|부탁|please|talk|speak|connect|transfer|want|need|get me|put me",
    re.I,
)
_HUMAN_ALONE = re.compile(
    r"^(진짜\s*|그냥\s*|빨리\s*)?(상담원|상담사|직원|사람|매니저|책임자|담당자|human|agent|operator|representative)"
    r"(분|님)?(이요|요|으로요|로요|요\?)?[\s.!?]*$",
    re.I,
)
# Said after the human word, these take the request back: "상담원 연결 안 해도 돼요", "상담원 말고".
_HUMAN_DECLINED = re.compile(
    r"안\s*해도|안\s*하셔도|안\s*할게|안\s*바꿔도|안\s*시켜|필요\s*없|괜찮아|괜찮습|하지\s*마|하지\s*않|말고|됐어|됐고|"
    r"됐습니다|no need|don'?t|do not|not necessary|no thanks",
    re.I,
)
# "사람" is the commonest word for anyone: it needs a verb that asks to speak with one.
_PERSON_REQUEST = re.compile(r"연결|바꿔|바꾸|통화|얘기|이야기|대화|말하|말할|상담|불러|나오|넘겨")
_DECLINED_BEFORE = re.compile(r"no need|don'?t|do not|not necessary|no thanks", re.I)
# Talking about people rather than asking for one.
_PEOPLE = re.compile(r"사람들|사람마다|다른\s*사람|딴\s*사람|사람이\s*대신|대신\s*(주문|받|결제)|가족|남편|아내|부모")


@dataclass(frozen=True)
class Rule:
    intent: str
    pattern: re.Pattern[str]


RULES: tuple[Rule, ...] = (
    Rule(GOODBYE, re.compile(r"^(없어요|없습니다|아니요 없어요|됐어요|그게 다예요|끊을게요|끊겠습니다|이만|bye|goodbye|"
                             r"괜찮아요 감사|없어요 감사|수고하세요)|끊을게|끊겠|수고하세요|that'?s all", re.I)),
    Rule(RETURN_REQUEST, re.compile(r"반품|교환|돌려\s*보내|return|exchange", re.I)),
    Rule(DELIVERY, re.compile(r"운송장|송장|택배\s*사|배송\s*조회|tracking|어디쯤|어디까지|도착|언제\s*(와|오|도착)|"
                              r"안\s*와|배송|택배|delivery|shipping", re.I)),
    Rule(ORDER_STATUS, re.compile(r"주문|구매|결제\s*내역|order|purchase", re.I)),
    Rule(UPDATE_INFO, re.compile(r"(주소|연락처|전화\s*번호|이메일|휴대폰\s*번호).{0,12}"
                                 r"(변경|바꾸|바꿔|수정|update|change)|"
                                 r"(change|update).{0,12}(address|phone|email)", re.I)),
    Rule(ACCOUNT, re.compile(r"잔액|잔고|거래\s*내역|계좌|balance|account", re.I)),
    Rule(THANKS, re.compile(r"^((정말|진짜|너무|아|네|예)\s*)*(감사|고맙|thank)", re.I)),
    Rule(AFFIRM, re.compile(r"^(네|예|맞아요|맞습니다|그래요|좋아요|부탁|yes|yeah|ok)", re.I)),
    Rule(DENY, re.compile(r"^(아니요|아뇨|아니에요|no\b|nope)", re.I)),
)


def normalise(text: str) -> str:
    """NFC, lower case, single spaces, no filler words a recogniser leaves in ("음", "어", "저기")."""
    t = unicodedata.normalize("NFC", text).lower()
    t = re.sub(r"^(음+|어+|저기요?|그+|아+|저+)[\s,.]+", "", t.strip())
    return re.sub(r"\s+", " ", t)


def wants_human(text: str) -> bool:
    """The caller asks for a person: a human word with a request verb after it, or the word alone."""
    t = normalise(text)
    # "AI 상담원이세요?" asks about us; it is not a request for a person.
    if re.search(r"(ai|인공지능|로봇|기계)\s*(상담원|상담사)?\s*(이세요|인가요|이에요|예요|맞아요)", t):
        return False
    if _HUMAN_ALONE.match(t):
        return True
    for m in _HUMAN_WORDS.finditer(t):
        rest = t[m.end():]
        if _PEOPLE.search(t[max(0, m.start() - 6): m.end() + 6]) and not re.search(r"연결|바꿔|통화하", rest):
            continue
        if _HUMAN_DECLINED.search(rest) or _DECLINED_BEFORE.search(t[:m.start()]):
            return False
        asks = _PERSON_REQUEST if m.group(0) == "사람" else _HUMAN_REQUEST
        if asks.search(rest) or re.search(r"(want|need|get|connect|talk|speak)\b", t[:m.start()]):
            return True
    return False


def is_question(text: str) -> bool:
    return bool(_QUESTION.search(normalise(text)))


def classify(text: str) -> str:
    """The intent of one caller turn; FAQ for a policy/how-to question, UNKNOWN if nothing matched."""
    t = normalise(text)
    if not t:
        return UNKNOWN
    if wants_human(t):
        return HUMAN
    for rule in RULES:
        if rule.pattern.search(t):
            if rule.intent == RETURN_REQUEST and is_question(t) and not _acts(t):
                return FAQ
            if rule.intent in (DELIVERY, ORDER_STATUS) and is_question(t) and not _about_my_order(t):
                return FAQ
            return rule.intent
    return FAQ if is_question(t) or len(t) > 6 else UNKNOWN


def _acts(t: str) -> bool:
    """A request to do something now ("반품해 주세요", "반품 신청할게요"), not a how-to question."""
    return bool(re.search(r"해\s*주세요|해\s*줘|할게요|하고\s*싶|싶어요|신청|접수|원해요|원합니다|부탁|please", t))


def _about_my_order(t: str) -> bool:
    return bool(re.search(r"(^|\s)(제|내|저희)(\s|가|꺼|거)|my|주문한|시킨|산|구매한|\d|번호|어디쯤|"
                          r"언제\s*(와|오)|안\s*와|도착", t))
