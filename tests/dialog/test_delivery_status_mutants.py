"""check_delivery's answer: which fields the model sees, the sentence spoken for each parcel status, the number
read from what the caller said, and its refusals (no CRM, no number, nothing found)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from tool_support import tool_ctx

from agent.dialog.tools import check_delivery
from agent.dialog.tools.base import NO_CRM, ToolContext
from agent.dialog.tools.check_delivery import describe_delivery

TODAY = date(2026, 11, 29)
NOT_FOUND = "말씀하신 번호로는 배송 정보가 조회되지 않아요. 번호를 한 번 더 확인해 주시겠어요?"


class Crm:
    def __init__(self, delivery: dict[str, Any] | None, order: dict[str, Any] | None = None):
        self.delivery = delivery
        self.order = order
        self.asked: list[dict[str, str | None]] = []

    def get_delivery(self, tracking_number: str | None = None, order_id: str | None = None) -> dict[str, Any] | None:
        self.asked.append({"tracking_number": tracking_number, "order_id": order_id})
        return self.delivery

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        return self.order


def _ctx(crm: Any) -> ToolContext:
    ctx = tool_ctx(crm)
    ctx.today = lambda: TODAY
    ctx.state.verify("C1", "name_phone_last4")
    return ctx


PARCEL = {"tracking_number": "600012345678", "order_id": "123456", "carrier": "한진택배", "status": "in_transit",
          "last_location": "대전 허브", "eta": "2026-12-03", "delivered_at": None, "customer_id": "C1"}


def test_the_model_sees_the_parcel_but_not_whose_it_is() -> None:
    crm = Crm(PARCEL)
    result = check_delivery.run(_ctx(crm), {"tracking_number": "6000-1234-5678 번이요", "order_id": "주문 없음"})
    assert crm.asked == [{"tracking_number": "600012345678", "order_id": None}]
    assert result.ok and result.data == {**{k: v for k, v in PARCEL.items() if k != "customer_id"},
                                         "status_ko": "배송 중"}
    assert result.say == "말씀하신 상품은 한진택배로 배송 중이에요. 지금 대전 허브에 있고, 12월 3일 도착 예정이에요."


def test_by_order_number_and_an_unknown_status_is_passed_on() -> None:
    crm = Crm({**PARCEL, "status": "held"})
    result = check_delivery.run(_ctx(crm), {"order_id": "123-456"})
    assert crm.asked == [{"tracking_number": None, "order_id": "123456"}]
    assert result.data["status_ko"] == "held"


@pytest.mark.parametrize(("parcel", "said"), [
    ({"status": "delivered", "delivered_at": "2026-11-28T15:00:00+09:00"}, "어제 한진택배로 배송 완료되었어요."),
    ({"status": "delivered", "delivered_at": None, "eta": "2026-11-29"}, "오늘 한진택배로 배송 완료되었어요."),
    ({"status": "out_for_delivery"}, "한진택배 기사님이 오늘 배송을 출발했어요. 오늘 안에 도착할 예정입니다."),
    ({"status": "ready", "last_location": "", "eta": None}, "한진택배로 배송 중이에요. 곧 도착할 예정이에요."),
    ({"status": "in_transit", "last_location": "옥천", "eta": "2026-11-30"},
     "한진택배로 배송 중이에요. 지금 옥천에 있고, 내일 도착 예정이에요."),
    ({"status": "in_transit", "carrier": "CJ대한통운", "last_location": "", "eta": "2026-12-01"},
     "CJ대한통운으로 배송 중이에요. 모레 도착 예정이에요."),
])
def test_what_is_said_for_each_status(parcel: dict[str, Any], said: str) -> None:
    assert describe_delivery({**PARCEL, **parcel}, TODAY) == said


def test_a_parcel_without_a_carrier_is_the_parcel_service() -> None:
    parcel = {k: v for k, v in PARCEL.items() if k != "carrier"}
    assert describe_delivery({**parcel, "status": "out_for_delivery"}, TODAY).startswith("택배사 기사님이")


def test_an_order_number_remembered_only_when_the_parcel_has_one() -> None:
    ctx = _ctx(Crm({**PARCEL, "order_id": None}))
    assert check_delivery.run(ctx, {"tracking_number": "600012345678"}).ok and "order_id" not in ctx.state.slots


def test_refusals() -> None:
    result = check_delivery.run(tool_ctx(None), {"tracking_number": "600012345678"})
    assert (result.data, result.say) == ({"error": "crm_unavailable"}, NO_CRM)
    ctx = _ctx(Crm(PARCEL))
    result = check_delivery.run(ctx, {"tracking_number": "모르겠어요"})
    assert (result.data, result.say) == ({"error": "missing_number"}, "주문번호나 운송장 번호를 말씀해 주시겠어요?")
    assert ctx.state.pending == "order_id"
    result = check_delivery.run(_ctx(Crm(None)), {"tracking_number": "600012345678"})
    assert (result.data, result.say) == ({"error": "delivery_not_found"}, NOT_FOUND)
    result = check_delivery.run(_ctx(Crm(None, order=None)), {"order_id": "123456"})
    assert result.data == {"error": "delivery_not_found"}
    result = check_delivery.run(_ctx(Crm(None, order={"customer_id": "C1"})), {"order_id": "123456"})
    assert (result.data, result.say) == ({"error": "not_shipped"}, "아직 출고 전이라 배송 정보가 없어요. "
                                         "출고되면 문자로 운송장 번호를 보내 드릴게요.")
