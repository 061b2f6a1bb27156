"""Tool: where a parcel is and when it arrives, by tracking number or order number."""

from __future__ import annotations

from datetime import date
from typing import Any

from agent.dialog.tools.base import (
    DELIVERY_STATUS_KO,
    NO_CRM,
    ToolContext,
    ToolResult,
    is_verified_for,
    josa,
    need_identity,
    refuse,
    say_date,
)

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tracking_number": {"type": "string", "description": "운송장 번호 (숫자만)"},
        "order_id": {"type": "string", "description": "운송장 번호를 모를 때 주문번호"},
    },
    "required": [],
}
WRITES = False


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """배송 현재 위치와 예상 도착일을 확인합니다.
    운송장 번호(tracking_number) 또는 주문번호(order_id) 중 하나가 필요합니다.
    본인 확인된 고객의 배송만 안내합니다."""
    if ctx.crm is None:
        return refuse("crm_unavailable", NO_CRM)
    tracking = "".join(ch for ch in str(args.get("tracking_number") or "") if ch.isdigit()) or None
    order_id = "".join(ch for ch in str(args.get("order_id") or "") if ch.isdigit()) or None
    if not tracking and not order_id:
        ctx.state.pending = "order_id"
        return refuse("missing_number", "주문번호나 운송장 번호를 말씀해 주시겠어요?")
    delivery = ctx.crm.get_delivery(tracking_number=tracking, order_id=order_id)
    if delivery is None:
        if order_id:
            order = ctx.crm.get_order(order_id)
            if order is not None and is_verified_for(ctx, order["customer_id"]):
                return refuse("not_shipped", "아직 출고 전이라 배송 정보가 없어요. "
                              "출고되면 문자로 운송장 번호를 보내 드릴게요.")
        return refuse("delivery_not_found", "말씀하신 번호로는 배송 정보가 조회되지 않아요. "
                      "번호를 한 번 더 확인해 주시겠어요?")
    if delivery.get("order_id"):
        ctx.state.slots["order_id"] = delivery["order_id"]
    if not is_verified_for(ctx, delivery["customer_id"]):
        return need_identity(ctx)
    data = {k: delivery.get(k) for k in ("tracking_number", "order_id", "carrier", "status", "last_location",
                                         "eta", "delivered_at")}
    data["status_ko"] = DELIVERY_STATUS_KO.get(delivery.get("status", ""), delivery.get("status"))
    return ToolResult(ok=True, data=data, say=f"말씀하신 상품은 {describe_delivery(delivery, ctx.today())}")


def describe_delivery(d: dict[str, Any], today: date) -> str:
    carrier = d.get("carrier", "택배사")
    status = d.get("status")
    if status == "delivered":
        return f"{say_date(d.get('delivered_at') or d.get('eta'), today)} {josa(carrier, '으로/로')} 배송 완료되었어요."
    if status == "out_for_delivery":
        return f"{carrier} 기사님이 오늘 배송을 출발했어요. 오늘 안에 도착할 예정입니다."
    where = d.get("last_location")
    eta = say_date(d.get("eta"), today)
    place = f" 지금 {where}에 있고," if where else ""
    arrive = f" {eta} 도착 예정이에요." if eta else " 곧 도착할 예정이에요."
    return f"{josa(carrier, '으로/로')} 배송 중이에요.{place}{arrive}"
