"""Tool: proves who the caller is. E-commerce/telecom: name + last 4 phone digits; banking: birth date +
last 4 account digits. Values must be ones the caller actually said in this call."""

from __future__ import annotations

from datetime import date
from typing import Any

from agent.dialog.tools.base import NO_CRM, ToolContext, ToolResult, refuse

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer_name": {"type": "string", "description": "고객 성함 (이커머스/통신)"},
        "phone_last4": {"type": "string", "description": "휴대폰 번호 뒷 4자리 (이커머스/통신)"},
        "birth_date": {"type": "string", "description": "생년월일 YYYY-MM-DD (은행)"},
        "account_last4": {"type": "string", "description": "계좌번호 뒷 4자리 (은행)"},
    },
    "required": [],
}
WRITES = False
FAILED = "죄송하지만 말씀하신 정보로는 본인 확인이 되지 않았어요. 한 번 더 말씀해 주시겠어요?"


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """고객 본인 확인을 합니다.
    이커머스/통신은 성함(customer_name)과 휴대폰 번호 뒷 4자리(phone_last4),
    은행은 생년월일(birth_date)과 계좌번호 뒷 4자리(account_last4)가 필요합니다.
    고객이 통화 중에 직접 말한 값만 사용하세요."""
    state = ctx.state
    if ctx.crm is None:
        return refuse("crm_unavailable", NO_CRM)
    banking = state.pack.verification == "birth_date_account_last4"
    if banking:
        return _bank(ctx, args)
    name = str(args.get("customer_name") or "").strip()
    last4 = _digits(args.get("phone_last4"))[-4:]
    if not name or len(last4) != 4:
        state.pending = "identity"
        return refuse("missing", "본인 확인을 위해 주문하신 분 성함과 휴대폰 번호 뒷 네 자리를 말씀해 주세요.")
    # Both values must come from the caller's own words (an LLM cannot "verify" on a guess).
    if not state.caller_said_digits(last4) or not any(name in t for t in state.caller_texts()):
        state.pending = "identity"
        return refuse("not_said_by_caller", "본인 확인을 위해 성함과 휴대폰 번호 뒷 네 자리를 직접 말씀해 주시겠어요?")
    found = ctx.crm.find_customers(name=name, phone_last4=last4)
    if len(found) != 1:
        state.pending = "identity"
        return refuse("no_match", FAILED)
    state.verify(found[0]["customer_id"], "name_phone_last4")
    state.pending = None
    return ToolResult(ok=True, data={"verified": True}, say=f"{name} 고객님, 본인 확인되었습니다.")


def _bank(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    state = ctx.state
    last4 = _digits(args.get("account_last4"))[-4:]
    try:
        birth = date.fromisoformat(str(args.get("birth_date") or ""))
    except ValueError:
        birth = None
    if birth is None or len(last4) != 4:
        state.pending = "identity"
        return refuse("missing", "본인 확인을 위해 생년월일과 계좌번호 뒷 네 자리를 말씀해 주세요.")
    if not state.caller_said_digits(last4) or birth not in state.caller_birth_dates:
        state.pending = "identity"
        return refuse("not_said_by_caller", "본인 확인을 위해 생년월일과 계좌번호 뒷 네 자리를 직접 말씀해 주시겠어요?")
    customer = ctx.crm.verify_bank_customer(birth, last4)
    if customer is None:
        state.pending = "identity"
        return refuse("no_match", "죄송하지만 말씀하신 정보로는 본인 확인이 되지 않았습니다. "
                      "한 번 더 말씀해 주시겠습니까?")
    state.verify(customer["customer_id"], "birth_date_account_last4")
    state.pending = None
    return ToolResult(ok=True, data={"verified": True}, say="본인 확인되었습니다. 감사합니다.")
