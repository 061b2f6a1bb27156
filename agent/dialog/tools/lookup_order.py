"""Tool: an order's status, items and delivery, for the verified customer only."""

from __future__ import annotations

from typing import Any

from agent.dialog.tools.base import (
    NO_CRM,
    ORDER_STATUS_KO,
    ToolContext,
    ToolResult,
    caller_customer,
    is_verified_for,
    need_identity,
    refuse,
    say_date,
    say_won,
)
from agent.dialog.tools.check_delivery import describe_delivery

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "주문번호 (숫자만, 예: 123456)"},
        "customer_name": {"type": "string", "description": "고객 이름 (주문번호를 모를 때 최근 주문 조회용)"},
    },
    "required": [],
}
WRITES = False


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """주문번호로 주문 상태(결제, 상품 준비, 배송 중, 배송 완료)와 상품, 배송 정보를 조회합니다.
    주문번호가 없으면 본인 확인된 고객의 최근 주문을 조회합니다.
    본인 확인이 안 되어 있으면 verification_required를 돌려줍니다."""
    if ctx.crm is None:
        return refuse("crm_unavailable", NO_CRM)
    order_id = "".join(ch for ch in str(args.get("order_id") or "") if ch.isdigit())
    if not order_id:
        customer_id = caller_customer(ctx)
        if customer_id is None:
            return need_identity(ctx)
        orders = ctx.crm.recent_orders(customer_id, 3)
        if not orders:
            return refuse("no_orders", "고객님 명의로 조회되는 주문이 없어요.")
        order_id = orders[0]["order_id"]
    order = ctx.crm.get_order(order_id)
    if order is None:
        ctx.state.pending = "order_id"
        return refuse("order_not_found", f"주문번호 {order_id}로는 주문이 조회되지 않아요. "
                      f"주문번호를 한 번 더 말씀해 주시겠어요?")
    ctx.state.slots["order_id"] = order_id
    if not is_verified_for(ctx, order["customer_id"]):
        return need_identity(ctx)
    return ToolResult(ok=True, data=_public(order), say=describe_order(order, ctx))


def _public(order: dict[str, Any]) -> dict[str, Any]:
    """What the model may see: no phone number, no internal ids beyond the order's own."""
    keep = ("order_id", "status", "ordered_at", "total_won", "payment", "items", "delivery")
    out = {k: order.get(k) for k in keep}
    out["status_ko"] = ORDER_STATUS_KO.get(order.get("status", ""), order.get("status"))
    return out


def describe_order(order: dict[str, Any], ctx: ToolContext) -> str:
    today = ctx.today()
    items = order.get("items") or []
    product = items[0]["product"] if items else "상품"
    if len(items) > 1:
        product += f" 외 {len(items) - 1}건"
    head = f"주문번호 {order['order_id']}, {product} 주문"
    status = order.get("status")
    delivery = order.get("delivery")
    if status == "cancelled":
        return f"{head}은 취소된 주문이에요. 결제 금액 {say_won(order.get('total_won'))}은 취소 처리되었습니다."
    if status in ("paid", "preparing"):
        ordered = say_date(order.get("ordered_at"), today)
        return (f"{head}은 {ordered} 결제되었고, 지금 {ORDER_STATUS_KO[status]}이에요. "
                "출고되면 문자로 운송장 번호를 보내 드릴게요.")
    if delivery:
        return f"{head}은 {describe_delivery(delivery, today)}"
    return f"{head}은 지금 {ORDER_STATUS_KO.get(status or '', status)} 상태예요."
