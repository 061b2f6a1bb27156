"""search_faq: the answer it gives the model (passage, section, rounded score, the sentence to say), and the
refusal when there is no knowledge base, no question, or no hit good enough to answer from."""

from __future__ import annotations

import pytest
from tool_support import tool_ctx

from agent.dialog.knowledge import MIN_SCORE, Hit
from agent.dialog.tools import search_faq

PASSAGE = "반품은 상품을 받은 날부터 7일 이내에 신청할 수 있습니다. 맞춤 제작 상품은 반품할 수 없습니다."


class Kb:
    def __init__(self, *hits: Hit):
        self.hits = list(hits)
        self.queries: list[str] = []

    def search(self, query: str) -> list[Hit]:
        self.queries.append(query)
        return self.hits


def _hit(score: float, heading: str = "반품 기간") -> Hit:
    return Hit(source="faq.md", title="자주 묻는 질문", heading=heading, text=PASSAGE, score=score)


def test_a_good_hit_is_answered_from_its_passage() -> None:
    ctx = tool_ctx(None)
    ctx.kb = kb = Kb(_hit(0.83456), _hit(0.5, "교환"))
    result = search_faq.run(ctx, {"query": "  반품 기간이 어떻게 되나요  "})
    assert kb.queries == ["반품 기간이 어떻게 되나요"]
    assert result.ok and result.data["section"] == "반품 기간" and result.data["passage"] == PASSAGE
    assert result.data["score"] == 0.83
    assert result.say == result.data["answer"] and "7일 이내" in result.say


@pytest.mark.parametrize("score", [MIN_SCORE, MIN_SCORE + 0.001])
def test_a_hit_at_the_threshold_answers(score: float) -> None:
    ctx = tool_ctx(None)
    ctx.kb = Kb(_hit(score))
    assert search_faq.run(ctx, {"query": "반품 기간"}).ok


def test_a_weak_hit_is_not_an_answer_but_its_sections_are_offered() -> None:
    ctx = tool_ctx(None)
    ctx.kb = Kb(_hit(MIN_SCORE - 0.01), _hit(0.1, "교환"))
    result = search_faq.run(ctx, {"query": "포인트 적립"})
    assert (result.ok, result.say) == (False, search_faq.NOT_FOUND)
    assert result.data == {"error": "not_found", "candidates": ["반품 기간", "교환"]}
    ctx.kb = Kb()
    assert search_faq.run(ctx, {"query": "포인트 적립"}).data == {"error": "not_found", "candidates": []}


def test_no_knowledge_base_or_no_question() -> None:
    result = search_faq.run(tool_ctx(None), {"query": "반품"})
    assert (result.ok, result.data, result.say) == (False, {"error": "no_kb"}, search_faq.NOT_FOUND)
    ctx = tool_ctx(None)
    ctx.kb = kb = Kb(_hit(0.9))
    result = search_faq.run(ctx, {"query": "   "})
    assert (result.data, result.say) == ({"error": "empty_query"}, search_faq.NOT_FOUND) and kb.queries == []
    assert search_faq.run(ctx, {}).data == {"error": "empty_query"}
