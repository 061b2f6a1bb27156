"""Tool: answers a policy / how-to question from the pack's knowledge base."""

from __future__ import annotations

from typing import Any

from agent.dialog.knowledge import MIN_SCORE, spoken_answer
from agent.dialog.tools.base import ToolContext, ToolResult, refuse

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "고객의 질문 (핵심 단어 위주)"}},
    "required": ["query"],
}
WRITES = False
NOT_FOUND = "죄송해요, 그 부분은 제가 가진 안내 자료에서 찾지 못했어요."


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """자주 묻는 질문과 정책 문서(반품, 교환, 배송, 환불 시점, 회원 혜택 등)에서 관련 답변을 검색합니다.
    찾은 내용만 근거로 답하세요."""
    query = str(args.get("query") or "").strip()
    if not query or ctx.kb is None:
        return refuse("no_kb" if ctx.kb is None else "empty_query", NOT_FOUND)
    hits = ctx.kb.search(query)
    if not hits or hits[0].score < MIN_SCORE:
        return refuse("not_found", NOT_FOUND, candidates=[h.heading for h in hits])
    hit = hits[0]
    answer = spoken_answer(hit, query)
    return ToolResult(ok=True, data={"answer": answer, "section": hit.heading, "passage": hit.text,
                                     "score": round(hit.score, 2)}, say=answer)
