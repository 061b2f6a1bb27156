"""Tool: records a return or exchange *request* (never a refund) for a verified customer's order."""

from __future__ import annotations

from typing import Any

from agent.dialog.tools.base import (
    NO_CRM,
    ToolContext,
    ToolResult,
    is_verified_for,
    need_identity,
    refuse,
    to_date,
)
from agent.privacy.pii import mask_text

RETURN_WINDOW_DAYS = 7  # plan §5.2: 수령 후 7일 이내
RETURN_TYPES = ("반품", "교환")

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "주문번호"},
        "reason": {"type": "string", "description": "고객이 말한 반품/교환 사유"},
        "return_type": {"type": "string", "enum": list(RETURN_TYPES)},
    },
    "required": ["order_id", "return_type"],
}
WRITES = True


def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """반품/교환 요청을 접수합니다 (환불은 하지 않으며, 환불은 상담원이 검수 후 처리합니다).
    본인 확인과 고객의 명시적인 반품/교환 요청이 있어야 하며,
    수령 후 7일 이내의 배송 완료 주문만 가능하고 맞춤 제작 상품은 불가합니다."""
    state = ctx.state
    if ctx.crm is None:
        return refuse("crm_unavailable", NO_CRM)
    if state.writes_blocked:
        return refuse("blocked", "죄송하지만 그 요청은 처리해 드릴 수 없어요.")
    if not state.return_requested:
        # The model may propose a return; only the caller's own words can start one.
        return refuse("not_requested_by_caller", "반품이나 교환을 원하시는지 먼저 말씀해 주시겠어요?")
    return_type = args.get("return_type") if args.get("return_type") in RETURN_TYPES else "반품"
    order_id = "".join(ch for ch in str(args.get("order_id") or state.slots.get("order_id") or "") if ch.isdigit())
    if not order_id:
        state.pending = "order_id"
        return refuse("missing_order_id", f"{return_type}하실 주문의 주문번호를 말씀해 주시겠어요?")
    order = ctx.crm.get_order(order_id)
    if order is None:
        state.pending = "order_id"
        return refuse("order_not_found", f"주문번호 {order_id}로는 주문이 조회되지 않아요. "
                      f"주문번호를 한 번 더 말씀해 주시겠어요?")
    state.slots["order_id"] = order_id
    if not is_verified_for(ctx, order["customer_id"]):
        return need_identity(ctx)
    problem = _ineligible(ctx, order)
    if problem:
        return problem
    if any(r.get("status") == "requested" for r in ctx.crm.returns_for_order(order_id)):
        return refuse("already_requested", f"주문번호 {order_id}는 이미 반품이나 교환이 접수되어 있어요. "
                      f"회수 기사님이 곧 방문하실 거예요.")
    # The reason is the caller's own words, kept in the CRM: masked like every other stored text.
    reason = mask_text(str(args.get("reason") or state.slots.get("return_reason") or "고객 요청"))[:200]
    created = ctx.crm.create_return(order_id, order["customer_id"], return_type, reason, state.call.call_id)
    return ToolResult(
        ok=True,
        data={"return_id": created.get("return_id"), "order_id": order_id, "return_type": return_type,
              "status": "requested", "refund": "상담원이 상품 검수 후 처리"},
        say=(f"주문번호 {order_id} {return_type} 접수가 완료되었어요. "
             f"1~2일 안에 택배 기사님이 방문해서 상품을 회수할 거예요. "
             + ("환불은 상품 검수가 끝나면 담당자가 처리해 드립니다." if return_type == "반품"
                else "회수된 상품을 확인한 뒤 새 상품을 보내 드릴게요.")),
    )


def _ineligible(ctx: ToolContext, order: dict[str, Any]) -> ToolResult | None:
    if order.get("status") == "cancelled":
        return refuse("cancelled", "이 주문은 이미 취소된 주문이라 반품할 상품이 없어요.")
    if order.get("status") != "delivered":
        return refuse("not_delivered", "아직 배송이 끝나지 않은 주문이에요. "
                      "상품을 받으신 뒤에 반품이나 교환을 신청하실 수 있어요.")
    if any(not item.get("returnable", True) for item in order.get("items") or []):
        return refuse("not_returnable", "맞춤 제작 상품은 반품이나 교환이 어려워요. "
                      "제품에 문제가 있으시면 상담원이 도와드릴게요.")
    delivery = order.get("delivery") or {}
    delivered = to_date(delivery.get("delivered_at") or delivery.get("eta"))
    if delivered is not None and (ctx.today() - delivered).days > RETURN_WINDOW_DAYS:
        return refuse("window_passed", "상품을 받으신 지 7일이 지나서 단순 변심 반품은 어려워요. "
                      "제품 불량이라면 상담원이 확인해 드릴게요.")
    return None
