"""What a tool writes from the caller's own words is masked too: a return reason lands in the CRM without the
phone or account number the caller mentioned in it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dialog"))

from dialog_support import FakeClock  # noqa: E402

from agent.dialog.escalation import EscalationManager  # noqa: E402
from agent.dialog.packs import load_pack  # noqa: E402
from agent.dialog.policy import CallInfo  # noqa: E402
from agent.dialog.settings import EscalationSettings  # noqa: E402
from agent.dialog.state import DialogState  # noqa: E402
from agent.dialog.tools import ToolBox  # noqa: E402
from agent.dialog.tools.base import ToolContext  # noqa: E402
from agent.store.crm import EmbeddedCrm  # noqa: E402
from agent.store.db import Database  # noqa: E402


def test_return_reason_is_stored_masked(db: Database) -> None:
    crm = EmbeddedCrm(db)
    state = DialogState(call=CallInfo(call_id="r1", caller="01012345678"), pack=load_pack("ecommerce"),
                        clock=FakeClock())
    state.return_requested = True
    ctx = ToolContext(state=state, crm=crm, kb=None, escalation=EscalationManager(EscalationSettings()))
    reason = "불량이에요. 환불은 신한은행 110-123-456789로, 연락은 010-9876-5432로 주세요"
    gen = ToolBox(load_pack("ecommerce")).call("process_return",
                                               {"order_id": "234567", "return_type": "반품", "reason": reason}, ctx)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        assert stop.value.ok
    (stored,) = crm.returns_for_order("234567")
    assert stored["reason"] == "불량이에요. 환불은 신한은행 [계좌번호 ****6789]로, 연락은 [전화번호 ****5432]로 주세요"
