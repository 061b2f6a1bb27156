"""The scripted policy (no LLM): keyword intents, slot capture (spoken digits, names, birth dates), the same
tools and KB as the LLM, and escalation. The default policy, and the LLM's per-turn fallback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from agent.dialog import intents, slots
from agent.dialog.conversation import ConversationBase
from agent.dialog.crm import CrmAdapter
from agent.dialog.escalation import EscalationManager, extractive_summary
from agent.dialog.knowledge import KnowledgeBase
from agent.dialog.language import ENGLISH as ENGLISH_CODE
from agent.dialog.language import CallLanguage
from agent.dialog.packs import Pack, load_pack
from agent.dialog.policy import CallInfo, DialogEvent, EndCall, Escalate, Say
from agent.dialog.settings import PACKS, DialogSettings
from agent.dialog.state import DialogState
from agent.dialog.tools import PROGRESS_ERRORS, ToolBox
from agent.dialog.tools.base import ToolContext, ToolResult
from agent.dialog.turn import pre_turn, speak

NOT_UNDERSTOOD = (
    "죄송해요, 제가 잘 이해하지 못했어요. 주문 조회, 배송, 반품이나 교환, 자주 묻는 질문을 도와드릴 수 있어요.",
    "죄송합니다, 다시 한 번 말씀해 주시겠어요? 원하시면 상담원을 연결해 드릴 수도 있어요.",
)
NO_BACKEND = "죄송해요, 지금은 주문이나 계좌 정보를 제가 직접 확인할 수 없어서 상담원에게 연결해 드릴게요."
FAQ_NOT_FOUND = "죄송해요, 그 부분은 제가 바로 답변드리기 어려워요. 다르게 한 번 말씀해 주시겠어요?"
ANYTHING_ELSE = "더 궁금하신 점 있으세요?"
GOODBYE = "이용해 주셔서 감사합니다. 좋은 하루 보내세요."
ASK_ORDER = "확인해 드릴게요. 주문번호를 말씀해 주시겠어요?"
ASK_RETURN_ORDER = "{kind} 도와드릴게요. {kind}하실 주문의 주문번호를 말씀해 주시겠어요?"
ASK_RETURN_REASON = "{kind} 사유를 간단히 말씀해 주시겠어요? 예를 들어 단순 변심인지, 제품 불량인지 알려 주세요."
ASK_UPDATE_FIELD = "주소, 이메일, 연락처 중에서 어떤 정보를 바꾸고 싶으세요?"
ASK_UPDATE_VALUE = "바꾸실 {field} 말씀해 주세요."
THANKS_REPLY = "천만에요. 더 도와드릴 일이 있을까요?"
AFFIRM_REPLY = "네, 말씀해 주세요."
DENY_REPLY = "알겠습니다. 다른 문의가 있으신가요?"
SERVICE_UNAVAILABLE = "service_unavailable"  # reason code when there is no CRM to answer from
# What an English caller hears for the fixed replies. Any other reply is tool or KB text in Korean: the
# caller is told so and handed to a human (reason language_support) rather than hearing Korean; so is an
# unanswered question, since the knowledge base is Korean.
ENGLISH = {
    NOT_UNDERSTOOD[0]: "Sorry, I didn't catch that. I can help with orders, deliveries, returns and common "
                       "questions.",
    NOT_UNDERSTOOD[1]: "Sorry, could you say that again? I can also connect you to an agent.",
    NO_BACKEND: "Sorry, I can't look up orders or accounts right now, so I'll connect you to an agent.",
    ANYTHING_ELSE: "Is there anything else I can help with?",
    GOODBYE: "Thank you for calling. Have a nice day.",
    ASK_ORDER: "Let me check that. Could you tell me your order number?",
    ASK_RETURN_ORDER.format(kind="반품"): "I can help with a return. What is the order number?",
    ASK_RETURN_ORDER.format(kind="교환"): "I can help with an exchange. What is the order number?",
    ASK_RETURN_REASON.format(kind="반품"): "Could you tell me briefly why, for example a change of mind or a defect?",
    ASK_RETURN_REASON.format(kind="교환"): "Could you tell me briefly why, for example the wrong size or a defect?",
    THANKS_REPLY: "You're welcome. Is there anything else I can help with?",
    AFFIRM_REPLY: "Sure, go ahead.",
    DENY_REPLY: "All right. Do you have any other questions?",
}
ENGLISH_HELLO = "Hello, I'm an AI assistant, and I can help you in English."
ENGLISH_HANDOFF = "I'm sorry, I can only give that answer in Korean. I'll connect you to an agent who speaks English."
ENGLISH_REFUSAL = "Sorry, I can't help with that. For your security, please never say card numbers or passwords."
_REASON_WORDS = re.compile(r"변심|불량|고장|파손|깨져|찢어|사이즈|색상|작아|커요|커서|마음에\s*안|오배송|"
                           r"잘못\s*(왔|배송)|늦게")
_FIELD_WORDS = (("주소", "address"), ("이메일", "email"), ("메일", "email"), ("연락처", "phone"),
                ("전화번호", "phone"), ("휴대폰", "phone"))
_FIELD_KO = {"address": "주소를", "email": "이메일을", "phone": "연락처를"}
_NEW_VALUE = re.compile(r"(?:주소|이메일|메일|연락처|전화\s*번호|휴대폰\s*번호)(?:를|을|는|은)?\s*"
                        r"(.+?)\s*(?:으로|로)\s*"
                        r"(?:변경|바꿔|바꾸|수정)")
_ACCOUNT_INTENTS = (intents.ORDER_STATUS, intents.DELIVERY, intents.RETURN_REQUEST, intents.UPDATE_INFO,
                    intents.ACCOUNT)


class ScriptedPolicy:
    name = "scripted"

    def __init__(self, *, settings: DialogSettings, pack: Pack, crm: CrmAdapter | None,
                 kb: KnowledgeBase | None, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] = date.today):
        self.settings = settings
        self.pack = pack
        self.crm = crm
        self.kb = kb
        self.clock = clock
        self.today = today
        self.tools = self.toolbox(pack)
        self._toolboxes: dict[str, ToolBox] = {pack.name: self.tools}

    def toolbox(self, pack: Pack) -> ToolBox:
        return ToolBox(pack, filler_after_s=self.settings.filler_after_s, timeout_s=self.settings.crm.timeout_s * 2 + 1)

    def pack_for(self, call: CallInfo) -> Pack:
        """The call's pack: `callagent_industry` from the dialplan (one DID per industry), else the configured one."""
        name = call.industry or call.variables.get("callagent_industry", "")
        return load_pack(name) if name in PACKS and name != self.pack.name else self.pack

    def resources(self, pack: Pack) -> tuple[ToolBox, KnowledgeBase | None]:
        if pack.name not in self._toolboxes:
            self._toolboxes[pack.name] = self.toolbox(pack)
        kb = self.kb.for_pack(pack.name) if self.kb is not None and self.kb.pack != pack.name else self.kb
        return self._toolboxes[pack.name], kb

    def open(self, call: CallInfo) -> ScriptedConversation:
        return ScriptedConversation(self, DialogState(call=call, pack=self.pack_for(call), clock=self.clock))


class ScriptedConversation(ConversationBase):
    def __init__(self, policy: ScriptedPolicy, state: DialogState,
                 escalation: EscalationManager | None = None):
        self.policy = policy
        self.state = state
        self.pack = state.pack
        self.tools, self.kb = policy.resources(state.pack)
        self.escalation = escalation or EscalationManager(policy.settings.escalation, self.pack.sensitive_keywords)
        self.ctx = ToolContext(state=state, crm=policy.crm, kb=self.kb, escalation=self.escalation,
                               today=policy.today)
        self.max_chars = policy.settings.max_say_chars
        self.language = CallLanguage()
        self._greeted_in_english = False

    # --- Conversation protocol --------------------------------------------------------------------
    def respond(self, text: str, source: str) -> Iterator[DialogEvent]:
        if not text.strip():
            return
        if source != "dtmf":
            self.language.observe(text)
        intent, handled = pre_turn(text, self.state, self.escalation, self.max_chars)
        if handled is not None:
            if self.language.current == ENGLISH_CODE and any(isinstance(e, Say) for e in handled):
                # A refusal or security warning, written in Korean: the English caller gets one line instead.
                handled = [*speak(self.state, ENGLISH_REFUSAL, self.max_chars),
                           *(e for e in handled if not isinstance(e, Say))]
            yield from handled
            return
        yield from self.answer(text, intent)

    def summary(self) -> str:
        return extractive_summary(self.state)

    # --- one turn (the caller's words are already recorded and checked) ---------------------------
    def answer(self, text: str, intent: str) -> Iterator[DialogEvent]:
        """Answers a turn that passed the guardrails; also the LLM conversation's per-turn fallback."""
        resolved, reply, extra = yield from self._dispatch(text, intent)
        if reply and self.language.current == ENGLISH_CODE:
            reply, extra = self._in_english(reply, extra)
        if reply:
            yield from speak(self.state, reply, self.max_chars)
        if extra is not None:
            yield extra
            return
        escalate = self.escalation.note_outcome(self._topic(intent), resolved, self.state)
        if escalate is not None:
            yield escalate

    def _in_english(self, reply: str, extra: DialogEvent | None) -> tuple[str, DialogEvent | None]:
        english = ENGLISH.get(reply)
        if english is None:
            english = ENGLISH_HANDOFF
            if extra is None or isinstance(extra, EndCall):
                extra = self.escalation.language_support(self.state)
        if not self._greeted_in_english:
            self._greeted_in_english = True  # the greeting was Korean: say once who is speaking, in English
            english = f"{ENGLISH_HELLO} {english}"
        return english, extra

    def _topic(self, intent: str) -> str:
        pending = self.state.pending_intent
        return pending if intent in (intents.UNKNOWN, intents.FAQ) and pending else intent

    def _dispatch(self, text: str, intent: str) -> Any:
        """Generator: yields Filler/ToolUsed while tools run; returns (resolved, reply, final event)."""
        st = self.state
        pending = st.pending
        if pending == "identity":
            verified = yield from self._try_identity(text)
            if verified is not None:
                if not verified.ok:
                    return verified.data.get("error") in PROGRESS_ERRORS, verified.say, None
                if st.pending_intent:
                    follow = yield from self._dispatch("", st.pending_intent)
                    return follow[0], f"{verified.say} {follow[1]}".strip(), follow[2]
                return True, f"{verified.say} 무엇을 도와드릴까요?", None
        if pending == "order_id" and slots.order_numbers(text) and intent in (intents.FAQ, intents.UNKNOWN):
            intent = st.pending_intent or intents.ORDER_STATUS
        if pending == "return_reason" and intent in (intents.FAQ, intents.UNKNOWN, intents.RETURN_REQUEST):
            st.slots["return_reason"] = text.strip()[:200]
            intent = intents.RETURN_REQUEST
        if pending and pending.startswith("update:") and intent in (intents.FAQ, intents.UNKNOWN):
            return (yield from self._update(text, pending.split(":", 1)[1], value=text.strip()))
        if pending == "anything_else" and intent in (intents.DENY, intents.GOODBYE):
            return True, GOODBYE, EndCall("completed")
        st.pending = None
        if intent in _ACCOUNT_INTENTS and self.policy.crm is None:
            st.note("CRM 없음")
            return False, NO_BACKEND, Escalate(SERVICE_UNAVAILABLE, self.summary(), 5)
        if intent in (intents.ORDER_STATUS, intents.DELIVERY):
            return (yield from self._order(text, intent))
        if intent == intents.RETURN_REQUEST:
            return (yield from self._return(text))
        if intent == intents.UPDATE_INFO:
            return (yield from self._update(text, None))
        if intent == intents.ACCOUNT:
            return self._after((yield from self._tool("lookup_account", {}, intents.ACCOUNT)))
        if intent == intents.GOODBYE:
            return True, GOODBYE, EndCall("completed")
        if intent == intents.THANKS:
            st.pending = "anything_else"
            return True, THANKS_REPLY, None
        if intent in (intents.AFFIRM, intents.DENY):
            st.pending = "anything_else" if intent == intents.DENY else None
            reply = AFFIRM_REPLY if intent == intents.AFFIRM else DENY_REPLY
            return True, reply, None
        if intent == intents.FAQ:
            return (yield from self._faq(text))
        return False, NOT_UNDERSTOOD[self.escalation.failures(intents.UNKNOWN) % len(NOT_UNDERSTOOD)], None

    def _tool(self, name: str, args: dict[str, Any], intent: str | None = None) -> Any:
        result: ToolResult = yield from self.tools.call(name, args, self.ctx)
        if result.data.get("error") == "verification_required" and intent:
            self.state.pending_intent = intent
        return result

    def _after(self, result: ToolResult) -> tuple[bool, str, DialogEvent | None]:
        if result.escalate is not None:
            return True, result.say, result.escalate
        if result.ok:
            self.state.pending_intent = None
            if self.state.pending is None:
                self.state.pending = "anything_else"
            return True, f"{result.say} {ANYTHING_ELSE}", None
        # Asking for a missing slot is progress, not a failure to count towards repeated_failure.
        return result.data.get("error") in PROGRESS_ERRORS, result.say, None

    def _try_identity(self, text: str) -> Any:
        st = self.state
        if st.pack.verification == "birth_date_account_last4":
            born = slots.birth_date(text)
            last4 = slots.last4(re.sub(r"\d{4}\s*년|[0-9가-힣]+\s*월\s*[0-9가-힣]+\s*일", " ", text))
            if born:
                st.slots["birth_date"] = born.isoformat()
            if last4:
                st.slots["account_last4"] = last4
            if not (st.slots.get("birth_date") and st.slots.get("account_last4")):
                return None if not (born or last4) else _partial("생년월일과 계좌번호 뒷 네 자리를 함께 말씀해 주세요.")
            args = {"birth_date": st.slots["birth_date"], "account_last4": st.slots["account_last4"]}
        else:
            name = slots.person_name(text, bare_ok=True)
            last4 = slots.last4(text)
            if name:
                st.slots["customer_name"] = name
            if last4:
                st.slots["phone_last4"] = last4
            if not (st.slots.get("customer_name") and st.slots.get("phone_last4")):
                return None if not (name or last4) else _partial("성함과 휴대폰 번호 뒷 네 자리를 함께 말씀해 주세요.")
            args = {"customer_name": st.slots["customer_name"], "phone_last4": st.slots["phone_last4"]}
        result = yield from self._tool("verify_identity", args)
        if not result.ok:
            for key in ("customer_name", "phone_last4", "birth_date", "account_last4"):
                st.slots.pop(key, None)
        return result

    def _order(self, text: str, intent: str) -> Any:
        st = self.state
        numbers = slots.order_numbers(text)
        tracking = [n for n in numbers if len(n) >= 10]
        if tracking:
            return self._after((yield from self._tool("check_delivery", {"tracking_number": tracking[0]}, intent)))
        candidates = [n for n in numbers if len(n) < 10]
        if self.policy.crm is not None and len(candidates) > 1:
            # "일이삼사오육이": keep the reading the CRM knows.
            candidates = [n for n in candidates if self.policy.crm.get_order(n) is not None] or candidates
        order_id = candidates[0] if candidates else st.slots.get("order_id")
        result = yield from self._tool("lookup_order", {"order_id": order_id} if order_id else {}, intent)
        if not result.ok and result.data.get("error") == "verification_required" and not order_id:
            st.pending, st.pending_intent = "order_id", intent
            return True, ASK_ORDER, None
        return self._after(result)

    def _return(self, text: str) -> Any:
        st = self.state
        kind = "교환" if "교환" in text or st.slots.get("return_type") == "교환" else "반품"
        st.slots["return_type"] = kind
        st.return_requested = True
        numbers = [n for n in slots.order_numbers(text) if len(n) < 10]
        if numbers:
            st.slots["order_id"] = numbers[0]
        if _REASON_WORDS.search(text) and "return_reason" not in st.slots:
            st.slots["return_reason"] = text.strip()[:200]
        if not st.slots.get("order_id"):
            st.pending, st.pending_intent = "order_id", intents.RETURN_REQUEST
            return True, ASK_RETURN_ORDER.format(kind=kind), None
        if not st.slots.get("return_reason"):
            st.pending, st.pending_intent = "return_reason", intents.RETURN_REQUEST
            return True, ASK_RETURN_REASON.format(kind=kind), None
        args = {"order_id": st.slots["order_id"], "return_type": kind, "reason": st.slots["return_reason"]}
        return self._after((yield from self._tool("process_return", args, intents.RETURN_REQUEST)))

    def _update(self, text: str, field: str | None, value: str | None = None) -> Any:
        st = self.state
        field = field or next((f for word, f in _FIELD_WORDS if word in text), None)
        if field is None:
            st.pending, st.pending_intent = "update:address", intents.UPDATE_INFO
            return True, ASK_UPDATE_FIELD, None
        if value is None:
            m = _NEW_VALUE.search(text)
            value = m.group(1).strip() if m else None
        if not value:
            st.pending, st.pending_intent = f"update:{field}", intents.UPDATE_INFO
            return True, ASK_UPDATE_VALUE.format(field=_FIELD_KO[field]), None
        args = {"field": field, "new_value": value}
        return self._after((yield from self._tool("update_customer_info", args, intents.UPDATE_INFO)))

    def _faq(self, text: str) -> Any:
        if self.kb is None:
            return False, FAQ_NOT_FOUND, None
        result = yield from self._tool("search_faq", {"query": text})
        if not result.ok:
            return False, FAQ_NOT_FOUND, None
        return self._after(result)



def _partial(say: str) -> ToolResult:
    return ToolResult(ok=False, data={"error": "partial"}, say=say)
