"""Tool: the model decides to hand the caller to a human agent (reason code llm_tool)."""

from __future__ import annotations

from typing import Any

from agent.dialog.tools.base import ToolContext, ToolResult

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "description": "전환 사유 (짧게)"},
        "priority": {"type": "string", "enum": ["일반", "긴급"]},
    },
    "required": ["reason"],
}
WRITES = False


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """인간 상담원에게 통화를 전환합니다.
    환불, 송금, 이체, 보상 요청, 해결할 수 없는 문의, 고객이 원할 때 사용합니다."""
    reason = str(args.get("reason") or "")[:100]
    if reason:
        ctx.state.note(f"AI 판단: {reason}")
    escalate = ctx.escalation.llm_requested(ctx.state, urgent=args.get("priority") == "긴급")
    return ToolResult(ok=True, data={"transferring": True}, escalate=escalate)
