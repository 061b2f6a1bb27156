"""process_return both ways (no crm_returns row before the caller is verified, one after verify_identity), what
it refuses and says for each ineligible order, the 7-day window at its edge, and what the stored row holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from tool_support import fresh_database, tool_ctx

from agent.dialog.tools import process_return, verify_identity
from agent.dialog.tools.base import NEED_IDENTITY_ECOMMERCE, NO_CRM, ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

NOT_FOUND = "주문번호 999999로는 주문이 조회되지 않아요. 주문번호를 한 번 더 말씀해 주시겠어요?"
REFUND = "상담원이 상품 검수 후 처리"


@pytest.fixture
def db(pg_dsn: str) -> Iterator[Database]:
    yield from fresh_database(pg_dsn)  # these tests write returns: each starts from the demo data


def _asked(crm: Any, caller: str = "0299998888") -> ToolContext:
    ctx = tool_ctx(crm, caller)
    ctx.state.return_requested = True
    return ctx


def test_before_verification_no_return_is_recorded_after_it_one_is(db: Database) -> None:
    crm = EmbeddedCrm(db)
    ctx = _asked(crm)  # 김민지's delivered order 234567, asked from a landline that is nobody's
    args = {"order_id": "234567", "return_type": "교환", "reason": "사이즈가 작아요"}
    result = process_return.run(ctx, args)
    assert (result.ok, result.say) == (False, NEED_IDENTITY_ECOMMERCE)
    assert result.data == {"error": "verification_required", "need": ["customer_name", "phone_last4"]}
    assert crm.returns_for_order("234567") == []
    assert ctx.state.slots["order_id"] == "234567"
    ctx.state.add_caller("김민지요, 뒷자리 5678")
    assert verify_identity.run(ctx, {"customer_name": "김민지", "phone_last4": "5678"}).ok
    result = process_return.run(ctx, args)
    (row,) = crm.returns_for_order("234567")
    assert (row["return_type"], row["reason"], row["status"]) == ("교환", "사이즈가 작아요", "requested")
    assert result.ok and result.data == {"return_id": row["return_id"], "order_id": "234567", "return_type": "교환",
                                         "status": "requested", "refund": REFUND}
    assert result.say == ("주문번호 234567 교환 접수가 완료되었어요. "
                          "1~2일 안에 택배 기사님이 방문해서 상품을 회수할 거예요. "
                          "회수된 상품을 확인한 뒤 새 상품을 보내 드릴게요.")
    with db.connection() as conn:
        stored = conn.execute("SELECT customer_id, call_id FROM crm_returns").fetchall()
    assert stored == [{"customer_id": "C1001", "call_id": "t1"}]
    again = process_return.run(ctx, args)
    assert again.data == {"error": "already_requested"}
    assert again.say == "주문번호 234567는 이미 반품이나 교환이 접수되어 있어요. 회수 기사님이 곧 방문하실 거예요."


def test_a_return_from_the_remembered_order_with_a_masked_default_type(db: Database) -> None:
    crm = EmbeddedCrm(db)
    ctx = _asked(crm, caller="01012345678")  # the caller ID proves 김민지
    ctx.state.slots.update(order_id="234567", return_reason="마음이 바뀌었어요 제 번호는 010-1234-5678")
    result = process_return.run(ctx, {"return_type": "환불"})  # not a return type: a plain return
    assert result.ok and result.data["return_type"] == "반품"
    assert result.say.endswith("환불은 상품 검수가 끝나면 담당자가 처리해 드립니다.")
    (row,) = crm.returns_for_order("234567")
    assert row["return_type"] == "반품" and row["reason"].startswith("마음이 바뀌었어요")
    assert "1234-5678" not in row["reason"] and "12345678" not in row["reason"]


def test_without_a_reason_the_row_says_customer_request(db: Database) -> None:
    crm = EmbeddedCrm(db)
    assert process_return.run(_asked(crm, caller="01012345678"), {"order_id": "234567", "return_type": "반품"}).ok
    assert [r["reason"] for r in crm.returns_for_order("234567")] == ["고객 요청"]


def test_a_long_reason_is_cut_to_200_characters(db: Database) -> None:
    crm = EmbeddedCrm(db)
    ctx = _asked(crm, caller="01012345678")
    assert process_return.run(ctx, {"order_id": "234567", "return_type": "반품", "reason": "가" * 300}).ok
    assert [r["reason"] for r in crm.returns_for_order("234567")] == ["가" * 200]


class Orders:
    """A CRM holding one delivered order of customer C1 (for dates and items the demo data lacks)."""

    def __init__(self, **order: Any):
        self.order = {"order_id": "111111", "customer_id": "C1", "status": "delivered", "items": [], **order}
        self.created: list[tuple[Any, ...]] = []

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        return self.order if order_id == "111111" else None

    def returns_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return [{"status": "done"}]  # a finished earlier return does not block a new one

    def create_return(self, *args: Any) -> dict[str, Any]:
        self.created.append(args)
        return {"return_id": 7}


TODAY = date(2026, 11, 29)


def _run(crm: Orders, **args: Any) -> Any:
    ctx = _asked(crm)
    ctx.today = lambda: TODAY
    ctx.state.verify("C1", "name_phone_last4")
    return process_return.run(ctx, {"order_id": "111111", "return_type": "반품", **args})


@pytest.mark.parametrize(("delivery", "ok"), [
    ({"delivered_at": (TODAY - timedelta(days=7)).isoformat()}, True),
    ({"delivered_at": (TODAY - timedelta(days=8)).isoformat()}, False),
    ({"delivered_at": None, "eta": (TODAY - timedelta(days=8)).isoformat()}, False),
    ({"delivered_at": "", "eta": (TODAY - timedelta(days=2)).isoformat()}, True),
])
def test_the_seven_day_window_counts_from_delivery(delivery: dict[str, Any], ok: bool) -> None:
    crm = Orders(delivery=delivery)
    result = _run(crm)
    assert result.ok is ok and len(crm.created) == int(ok)
    if not ok:
        assert result.data == {"error": "window_passed"}
        assert result.say == ("상품을 받으신 지 7일이 지나서 단순 변심 반품은 어려워요. "
                              "제품 불량이라면 상담원이 확인해 드릴게요.")
    else:
        assert crm.created == [("111111", "C1", "반품", "고객 요청", "t1")] and result.data["return_id"] == 7


def test_ineligible_orders_say_why() -> None:
    result = _run(Orders(status="cancelled"))
    assert (result.data, result.say) == ({"error": "cancelled"}, "이 주문은 이미 취소된 주문이라 반품할 상품이 없어요.")
    result = _run(Orders(status="shipped"))
    assert (result.data, result.say) == ({"error": "not_delivered"}, "아직 배송이 끝나지 않은 주문이에요. "
                                         "상품을 받으신 뒤에 반품이나 교환을 신청하실 수 있어요.")
    crm = Orders(items=[{"product": "액자"}, {"product": "각인 액자", "returnable": False}])
    result = _run(crm)
    assert (result.data, result.say) == ({"error": "not_returnable"}, "맞춤 제작 상품은 반품이나 교환이 어려워요. "
                                         "제품에 문제가 있으시면 상담원이 도와드릴게요.")
    assert crm.created == []
    assert _run(Orders(items=[{"product": "액자"}])).ok  # an item without the flag is returnable


def test_refusals_before_the_order_is_read() -> None:
    result = process_return.run(tool_ctx(None), {"order_id": "111111"})
    assert (result.data, result.say) == ({"error": "crm_unavailable"}, NO_CRM)
    ctx = tool_ctx(Orders())
    result = process_return.run(ctx, {"order_id": "111111", "return_type": "반품"})
    assert (result.data, result.say) == ({"error": "not_requested_by_caller"},
                                         "반품이나 교환을 원하시는지 먼저 말씀해 주시겠어요?")
    ctx.state.return_requested = ctx.state.writes_blocked = True
    result = process_return.run(ctx, {"order_id": "111111", "return_type": "반품"})
    assert (result.data, result.say) == ({"error": "blocked"}, "죄송하지만 그 요청은 처리해 드릴 수 없어요.")


def test_a_missing_or_unknown_order_number_is_asked_again() -> None:
    ctx = _asked(Orders())
    result = process_return.run(ctx, {"return_type": "교환", "order_id": "번호 몰라요"})
    assert (result.data, result.say) == ({"error": "missing_order_id"}, "교환하실 주문의 주문번호를 말씀해 주시겠어요?")
    assert ctx.state.pending == "order_id"
    ctx.state.pending = None
    result = process_return.run(ctx, {"return_type": "반품", "order_id": "999-999"})
    assert (result.data, result.say) == ({"error": "order_not_found"}, NOT_FOUND)
    assert ctx.state.pending == "order_id" and "order_id" not in ctx.state.slots
