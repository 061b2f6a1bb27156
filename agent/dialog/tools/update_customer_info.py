"""Tool: changes the verified caller's address, email or phone number, with the value the caller said."""

from __future__ import annotations

import re
from typing import Any

from agent.dialog.slots import phone_number
from agent.dialog.tools.base import NO_CRM, ToolContext, ToolResult, caller_customer, josa, need_identity, refuse

FIELDS = {"address": "주소", "email": "이메일", "phone": "연락처"}

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string", "description": "생략 가능: 본인 확인된 고객으로 처리됩니다"},
        "field": {"type": "string", "enum": list(FIELDS)},
        "new_value": {"type": "string", "description": "고객이 말한 새 값 그대로"},
    },
    "required": ["field", "new_value"],
}
WRITES = True


def _compact(text: str) -> str:
    return re.sub(r"[\s,.\-]", "", text.lower())


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """본인 확인된 고객의 주소(address), 이메일(email), 연락처(phone)를 고객이 직접 말한 새 값으로 변경합니다."""
    state = ctx.state
    if ctx.crm is None:
        return refuse("crm_unavailable", NO_CRM)
    if state.writes_blocked:
        return refuse("blocked", "죄송하지만 그 요청은 처리해 드릴 수 없어요.")
    field = str(args.get("field") or "")
    if field not in FIELDS:
        return refuse("bad_field", "주소, 이메일, 연락처 중에서 어떤 정보를 바꾸실지 말씀해 주시겠어요?")
    customer_id = caller_customer(ctx)
    # The id the model passes is ignored unless it is the verified one: no changing someone else's data.
    if customer_id is None or (args.get("customer_id") and args["customer_id"] != customer_id):
        return need_identity(ctx)
    value = str(args.get("new_value") or "").strip()
    if field == "phone":
        value = phone_number(value) or ""
        said = bool(value) and state.caller_said_digits(value)
    else:
        said = bool(value) and any(_compact(value) in _compact(t) for t in state.caller_texts())
    if not said:
        # A value the caller never said (an LLM guess, or injected text) is never written.
        state.pending = f"update:{field}"
        return refuse("value_not_from_caller",
                      f"바꾸실 {josa(FIELDS[field], '을/를')} 한 번 또박또박 말씀해 주시겠어요?")
    ctx.crm.update_customer(customer_id, field, value)
    return ToolResult(ok=True, data={"field": field, "updated": True},
                      say=f"네, {josa(FIELDS[field], '을/를')} 말씀하신 내용으로 변경해 드렸어요.")
