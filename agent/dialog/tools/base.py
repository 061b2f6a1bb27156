"""What every tool shares: the context it runs in, its result, and the identity checks that gate account
data. A tool is a module with PARAMETERS (JSON schema), WRITES, and `run(ctx, args)` whose docstring is
the description the LLM sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from types import ModuleType
from typing import Any

from agent.dialog.crm import CrmAdapter
from agent.dialog.escalation import EscalationManager
from agent.dialog.knowledge import KnowledgeBase
from agent.dialog.policy import Escalate
from agent.dialog.state import DialogState

NEED_IDENTITY_ECOMMERCE = ("주문 정보를 확인하려면 먼저 본인 확인이 필요해요. "
                           "주문하신 분 성함과 휴대폰 번호 뒷 네 자리를 말씀해 주세요.")
NEED_IDENTITY_BANKING = ("계좌 정보를 안내해 드리려면 먼저 본인 확인이 필요합니다. "
                         "생년월일과 계좌번호 뒷 네 자리를 말씀해 주세요.")
NO_CRM = "지금은 고객 정보를 조회할 수 없어서, 상담원이 직접 도와드리도록 연결해 드릴게요."
CRM_DOWN = "죄송해요, 지금 조회 시스템이 응답하지 않네요."


@dataclass
class ToolContext:
    state: DialogState
    crm: CrmAdapter | None
    kb: KnowledgeBase | None
    escalation: EscalationManager
    today: Callable[[], date] = date.today


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)  # what the LLM sees as the tool message
    say: str = ""  # a ready Korean answer: the scripted policy speaks it, the LLM gets it as a hint
    escalate: Escalate | None = None

    def message(self) -> dict[str, Any]:
        out = {"ok": self.ok, **self.data}
        if self.say:
            out["suggested_reply"] = self.say
        return out


def refuse(error: str, say: str, **data: Any) -> ToolResult:
    return ToolResult(ok=False, data={"error": error, **data}, say=say)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    writes: bool
    run: Callable[[ToolContext, dict[str, Any]], ToolResult]

    def schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def spec_from_module(module: ModuleType) -> ToolSpec:
    run = module.run
    return ToolSpec(name=module.__name__.rsplit(".", 1)[-1], description=inspect.getdoc(run) or "",
                    parameters=module.PARAMETERS, writes=module.WRITES, run=run)


# --- identity -------------------------------------------------------------------------------------
def national_phone(number: str) -> str:
    """Caller ID to the 010… form the CRM stores: "+82 10-1234-5678" → "01012345678"."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits.startswith("82") and len(digits) >= 11:
        digits = "0" + digits[2:]
    return digits


def is_verified_for(ctx: ToolContext, customer_id: str) -> bool:
    """True when this call has proved it is `customer_id`; a matching caller ID counts as proof."""
    state = ctx.state
    if state.verified_customer_id == customer_id:
        return True
    if state.verified_customer_id is None and ctx.crm is not None and state.pack.verification != \
            "birth_date_account_last4":
        caller = national_phone(state.call.caller)
        if len(caller) >= 10:
            customer = ctx.crm.get_customer(customer_id)
            if customer and national_phone(customer.get("phone", "")) == caller:
                state.verify(customer_id, "caller_id")
                return True
    return False


def need_identity(ctx: ToolContext) -> ToolResult:
    banking = ctx.state.pack.verification == "birth_date_account_last4"
    ctx.state.pending = "identity"
    return refuse("verification_required",
                  NEED_IDENTITY_BANKING if banking else NEED_IDENTITY_ECOMMERCE,
                  need=["birth_date", "account_last4"] if banking else ["customer_name", "phone_last4"])


def caller_customer(ctx: ToolContext) -> str | None:
    """The verified customer, or the one whose phone is the caller ID (verifying them)."""
    state = ctx.state
    if state.verified_customer_id:
        return state.verified_customer_id
    if ctx.crm is None or state.pack.verification == "birth_date_account_last4":
        return None
    caller = national_phone(state.call.caller)
    if len(caller) < 10:
        return None
    found = ctx.crm.find_customers(phone=caller)
    if len(found) == 1:
        state.verify(found[0]["customer_id"], "caller_id")
        return found[0]["customer_id"]
    return None


# --- speaking data ----------------------------------------------------------------------------------
ORDER_STATUS_KO = {"paid": "결제 완료", "preparing": "상품 준비 중", "shipped": "배송 중", "delivered": "배송 완료",
                   "cancelled": "주문 취소"}
DELIVERY_STATUS_KO = {"ready": "출고 준비 중", "in_transit": "배송 중", "out_for_delivery": "배송 출발",
                      "delivered": "배송 완료"}


def to_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


def say_date(value: Any, today: date) -> str:
    d = to_date(value)
    if d is None:
        return ""
    delta = (d - today).days
    named = {0: "오늘", 1: "내일", 2: "모레", -1: "어제", -2: "그저께"}.get(delta)
    return named or f"{d.month}월 {d.day}일"


def say_won(amount: Any) -> str:
    try:
        return f"{int(amount):,}원"
    except (TypeError, ValueError):
        return ""



def josa(word: str, pair: str) -> str:
    """`word` plus the particle that fits its last syllable: josa("이메일", "을/를") → "이메일을"."""
    with_final, without_final = pair.split("/")
    last = word[-1:] if word else ""
    has_final = "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0
    if pair == "으로/로" and has_final and (ord(last) - 0xAC00) % 28 == 8:  # ㄹ takes 로
        return word + without_final
    return word + (with_final if has_final else without_final)
