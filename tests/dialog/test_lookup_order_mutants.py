"""lookup_order both ways (nothing about the order before verification, its status after verify_identity), the
caller ID's own recent order, what the model may see of an order, and the sentence spoken for each status."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from tool_support import tool_ctx

from agent.dialog.tools import lookup_order, verify_identity
from agent.dialog.tools.base import NEED_IDENTITY_ECOMMERCE, NO_CRM, ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

TODAY = date(2026, 11, 29)


def test_before_verification_nothing_about_the_order_after_it_the_order(db: Database) -> None:
    ctx = tool_ctx(EmbeddedCrm(db), "0299998888")
    result = lookup_order.run(ctx, {"order_id": "주문 345678이요"})  # 이서준's order (C1002)
    assert (result.ok, result.say) == (False, NEED_IDENTITY_ECOMMERCE)
    assert result.data == {"error": "verification_required", "need": ["customer_name", "phone_last4"]}
    assert "전기압력밥솥" not in json.dumps(result.message(), ensure_ascii=False)
    assert ctx.state.slots["order_id"] == "345678" and ctx.state.pending == "identity"
    ctx.state.add_caller("이서준입니다, 뒷자리 6789")
    assert verify_identity.run(ctx, {"customer_name": "이서준", "phone_last4": "6789"}).ok
    result = lookup_order.run(ctx, {"order_id": "345678"})
    assert result.ok and result.data["status"] == "preparing" and result.data["status_ko"] == "상품 준비 중"
    assert set(result.data) == {"order_id", "status", "ordered_at", "total_won", "payment", "items", "delivery",
                                "status_ko"}  # never the customer's name, phone or id
    assert result.data["items"][0]["product"] == "10인용 전기압력밥솥" and result.data["total_won"] == 189000


def test_without_a_number_the_caller_ids_newest_order(db: Database) -> None:
    ctx = tool_ctx(EmbeddedCrm(db), "+82 10-2345-6789")  # 이서준: 345678 (1 day ago), 890123 (3 days ago)
    result = lookup_order.run(ctx, {})
    assert result.ok and result.data["order_id"] == "345678" and ctx.state.slots["order_id"] == "345678"
    assert ctx.state.verified_customer_id == "C1002"


def test_without_a_number_or_a_known_caller_identity_is_asked(db: Database) -> None:
    result = lookup_order.run(tool_ctx(EmbeddedCrm(db), "0299998888"), {"customer_name": "이서준"})
    assert result.data["error"] == "verification_required"


class Crm:
    def __init__(self, order: dict[str, Any] | None = None, recent: list[dict[str, Any]] | None = None):
        self.order = order
        self.recent = recent or []
        self.asked: list[tuple[str, int]] = []

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        return {"order_id": order_id, "customer_id": "C1", **self.order} if self.order is not None else None

    def recent_orders(self, customer_id: str, limit: int = 3) -> list[dict[str, Any]]:
        self.asked.append((customer_id, limit))
        return self.recent


def _ctx(crm: Crm) -> ToolContext:
    ctx = tool_ctx(crm)
    ctx.today = lambda: TODAY
    ctx.state.verify("C1", "name_phone_last4")
    return ctx


def test_a_verified_customer_without_orders_and_an_unknown_number() -> None:
    crm = Crm()
    result = lookup_order.run(_ctx(crm), {})
    assert (result.data, result.say) == ({"error": "no_orders"}, "고객님 명의로 조회되는 주문이 없어요.")
    assert crm.asked == [("C1", 3)]
    ctx = _ctx(Crm(None, [{"order_id": "222222"}]))
    result = lookup_order.run(ctx, {})
    assert (result.data, result.say) == ({"error": "order_not_found"}, "주문번호 222222로는 주문이 조회되지 않아요. "
                                         "주문번호를 한 번 더 말씀해 주시겠어요?")
    assert ctx.state.pending == "order_id" and "order_id" not in ctx.state.slots
    result = lookup_order.run(tool_ctx(None), {"order_id": "222222"})
    assert (result.data, result.say) == ({"error": "crm_unavailable"}, NO_CRM)


ITEM = {"product": "이어폰"}


@pytest.mark.parametrize(("order", "said"), [
    ({"status": "cancelled", "total_won": 39000, "items": [ITEM]},
     "주문번호 111111, 이어폰 주문은 취소된 주문이에요. 결제 금액 39,000원은 취소 처리되었습니다."),
    ({"status": "paid", "ordered_at": "2026-11-28T10:00:00+09:00", "items": [ITEM, ITEM, ITEM]},
     "주문번호 111111, 이어폰 외 2건 주문은 어제 결제되었고, 지금 결제 완료이에요. "
     "출고되면 문자로 운송장 번호를 보내 드릴게요."),
    ({"status": "preparing", "ordered_at": "2026-11-20", "items": []},
     "주문번호 111111, 상품 주문은 11월 20일 결제되었고, 지금 상품 준비 중이에요. "
     "출고되면 문자로 운송장 번호를 보내 드릴게요."),
    ({"status": "shipped", "items": [ITEM],
      "delivery": {"carrier": "한진택배", "status": "in_transit", "eta": "2026-11-30"}},
     "주문번호 111111, 이어폰 주문은 한진택배로 배송 중이에요. 내일 도착 예정이에요."),
    ({"status": "shipped", "items": [ITEM], "delivery": None},
     "주문번호 111111, 이어폰 주문은 지금 배송 중 상태예요."),
    ({"status": "lost", "items": [ITEM]}, "주문번호 111111, 이어폰 주문은 지금 lost 상태예요."),
    ({"status": "shipped", "items": [ITEM, {"product": "케이스"}]},
     "주문번호 111111, 이어폰 외 1건 주문은 지금 배송 중 상태예요."),
])
def test_what_is_said_for_each_status(order: dict[str, Any], said: str) -> None:
    result = lookup_order.run(_ctx(Crm(order)), {"order_id": "111111"})
    assert result.ok and result.say == said
    assert result.data["status_ko"] == {"cancelled": "주문 취소", "paid": "결제 완료", "preparing": "상품 준비 중",
                                        "shipped": "배송 중"}.get(order["status"], order["status"])
