"""check_delivery is identity-gated both ways: an unverified caller learns nothing about someone else's parcel
(no carrier, hub or arrival date, by tracking number or by order number); the verified owner hears all three."""

from __future__ import annotations

import json
from typing import Any

from dialog_support import FakeClock

from agent.dialog.escalation import EscalationManager
from agent.dialog.packs import load_pack
from agent.dialog.policy import CallInfo
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState
from agent.dialog.tools import ToolBox
from agent.dialog.tools.base import ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

# 김민지 (C1001, 010-1234-5678) owns order 123456, parcel 600012345678: CJ대한통운, at 대전 허브 터미널.
SECRETS = ("CJ", "대한통운", "대전", "허브", "도착")


def ctx_for(crm: Any, caller: str) -> ToolContext:
    state = DialogState(call=CallInfo(call_id="t1", caller=caller), pack=load_pack("ecommerce"), clock=FakeClock())
    return ToolContext(state=state, crm=crm, kb=None, escalation=EscalationManager(EscalationSettings()))


def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
    gen = ToolBox(load_pack("ecommerce")).call("check_delivery", args, ctx)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _told(result: Any) -> str:
    return json.dumps(result.message(), ensure_ascii=False) + (result.say or "")


def test_an_unverified_caller_hears_nothing_about_another_customers_parcel(db: Database) -> None:
    crm = EmbeddedCrm(db)
    for args in ({"tracking_number": "6000-1234-5678"}, {"order_id": "123456"}):
        ctx = ctx_for(crm, caller="0299998888")  # a landline that is nobody's
        result = run(ctx, args)
        assert not result.ok and result.data["error"] == "verification_required"
        told = _told(result)
        assert not any(word in told for word in SECRETS), told
        assert ctx.state.pending == "identity" and ctx.state.verified_customer_id is None


def test_another_customers_caller_id_is_no_proof(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="010-2345-6789")  # 이서준 calls about 김민지's parcel
    result = run(ctx, {"tracking_number": "600012345678"})
    assert result.data["error"] == "verification_required" and "대한통운" not in _told(result)


def test_the_owner_hears_carrier_hub_and_arrival(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="+82 10-1234-5678")
    result = run(ctx, {"tracking_number": "600012345678"})
    assert result.ok and ctx.state.verified_customer_id == "C1001"
    assert result.data["carrier"] == "CJ대한통운" and result.data["last_location"] == "대전 허브 터미널"
    assert result.say.startswith("말씀하신 상품은 CJ대한통운으로 배송 중이에요. 지금 대전 허브 터미널에 있고,")
    assert result.say.endswith("도착 예정이에요.")
    assert ctx.state.slots["order_id"] == "123456"


def test_a_caller_verified_by_name_and_digits_gets_the_answer(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="")
    ctx.state.verify("C1001", "name_phone_last4")
    result = run(ctx, {"order_id": "123456"})
    assert result.ok and result.data["tracking_number"] == "600012345678"


def test_not_shipped_is_told_only_to_the_owner(db: Database) -> None:
    """Order 345678 (이서준) has no parcel yet: its owner hears "출고 전", a stranger only "not found"."""
    crm = EmbeddedCrm(db)
    owner = run(ctx_for(crm, caller="01023456789"), {"order_id": "345678"})
    assert owner.data["error"] == "not_shipped"
    stranger = run(ctx_for(crm, caller="0299998888"), {"order_id": "345678"})
    assert stranger.data["error"] == "delivery_not_found" and "출고" not in _told(stranger)
