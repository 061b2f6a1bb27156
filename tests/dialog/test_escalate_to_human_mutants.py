"""escalate_to_human: the hand-over the model asks for, its reason noted for the summary (cut to 100
characters), and an urgent request queued ahead of a normal one."""

from __future__ import annotations

from tool_support import tool_ctx

from agent.dialog.policy import Escalate
from agent.dialog.tools import escalate_to_human


def test_escalate_to_human_hands_over_with_the_reason_noted() -> None:
    ctx = tool_ctx(None)
    result = escalate_to_human.run(ctx, {"reason": "환불 요청" + "가" * 200, "priority": "긴급"})
    assert result.ok and result.data == {"transferring": True} and isinstance(result.escalate, Escalate)
    assert result.escalate.reason == "llm_tool" and ctx.state.tried[0] == "AI 판단: 환불 요청" + "가" * 95
    assert "AI 판단: 환불 요청" in result.escalate.summary
    normal = escalate_to_human.run(tool_ctx(None), {"reason": "환불 요청"})
    assert normal.escalate is not None and normal.escalate.priority > result.escalate.priority  # urgent first
    silent = tool_ctx(None)
    assert escalate_to_human.run(silent, {}).ok and not any("AI 판단" in t for t in silent.state.tried)
