"""Tool (banking): balances of the verified customer's accounts, by the last four digits only."""

from __future__ import annotations

from typing import Any

from agent.dialog.tools.base import NO_CRM, ToolContext, ToolResult, need_identity, refuse, say_won

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"account_last4": {"type": "string", "description": "특정 계좌만 원할 때 계좌번호 뒷 4자리"}},
    "required": [],
}
WRITES = False


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """본인 확인된 고객의 계좌 잔액을 조회합니다 (계좌번호는 뒷 4자리만 안내). 이체나 송금은 할 수 없습니다."""
    if ctx.crm is None:
        return refuse("crm_unavailable", NO_CRM)
    customer_id = ctx.state.verified_customer_id
    if customer_id is None:
        return need_identity(ctx)
    accounts = ctx.crm.accounts(customer_id)
    wanted = str(args.get("account_last4") or "")
    if wanted:
        accounts = [a for a in accounts if a.get("last4") == wanted] or accounts
    if not accounts:
        return refuse("no_accounts", "고객님 명의로 조회되는 계좌가 없습니다.")
    first = accounts[0]
    say = f"끝자리 {first['last4']} {first['product']} 잔액은 {say_won(first['balance_won'])}입니다."
    if len(accounts) > 1:
        say += f" 이 밖에 계좌가 {len(accounts) - 1}개 더 있습니다."
    return ToolResult(ok=True, data={"accounts": accounts}, say=say)
