"""lookup_account both ways: before verify_identity succeeds the model learns no balance (caller ID is no proof in
banking); after it, the verified customer's accounts by their last four digits, and which one is spoken."""

from __future__ import annotations

import json
from typing import Any

from dialog_support import FakeClock

from agent.dialog.escalation import EscalationManager
from agent.dialog.packs import load_pack
from agent.dialog.policy import CallInfo
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState
from agent.dialog.tools import lookup_account, verify_identity
from agent.dialog.tools.base import NEED_IDENTITY_BANKING, NO_CRM, ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

# 김민지 (C1001): 하늘 자유입출금 통장 …6789 (1,532,000원), 하늘 정기적금 …0021 (6,000,000원).
C1001 = [{"last4": "6789", "product": "하늘 자유입출금 통장", "balance_won": 1532000},
         {"last4": "0021", "product": "하늘 정기적금", "balance_won": 6000000}]


def ctx_for(crm: Any, caller: str = "01012345678") -> ToolContext:
    state = DialogState(call=CallInfo(call_id="t1", caller=caller), pack=load_pack("banking"), clock=FakeClock())
    return ToolContext(state=state, crm=crm, kb=None, escalation=EscalationManager(EscalationSettings()))


def _verified(db: Database) -> ToolContext:
    ctx = ctx_for(EmbeddedCrm(db))
    ctx.state.add_caller("생년월일은 1985년 3월 12일이고 계좌 뒷자리는 6789예요")
    assert verify_identity.run(ctx, {"birth_date": "1985-03-12", "account_last4": "6789"}).ok
    return ctx


def test_before_verification_no_balance_is_told(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db))  # the caller ID is 김민지's: still no proof for a bank
    result = lookup_account.run(ctx, {"account_last4": "6789"})
    assert (result.ok, result.say) == (False, NEED_IDENTITY_BANKING)
    assert result.data == {"error": "verification_required", "need": ["birth_date", "account_last4"]}
    assert ctx.state.pending == "identity"
    told = json.dumps(result.message(), ensure_ascii=False)
    assert "1532000" not in told and "자유입출금" not in told


def test_after_verification_every_account_with_the_first_spoken(db: Database) -> None:
    result = lookup_account.run(_verified(db), {})
    assert result.ok and result.data == {"accounts": C1001}
    assert result.say == "끝자리 6789 하늘 자유입출금 통장 잔액은 1,532,000원입니다. 이 밖에 계좌가 1개 더 있습니다."


def test_one_account_by_its_last_four_digits(db: Database) -> None:
    result = lookup_account.run(_verified(db), {"account_last4": "0021"})
    assert result.ok and result.data == {"accounts": [C1001[1]]}
    assert result.say == "끝자리 0021 하늘 정기적금 잔액은 6,000,000원입니다."


def test_unknown_last_four_digits_fall_back_to_every_account(db: Database) -> None:
    result = lookup_account.run(_verified(db), {"account_last4": "9999"})
    assert result.ok and result.data == {"accounts": C1001}


class NoAccounts:
    def accounts(self, customer_id: str) -> list[dict[str, Any]]:
        return []


def test_a_verified_customer_without_accounts_and_no_crm() -> None:
    ctx = ctx_for(NoAccounts())
    ctx.state.verify("C9", "birth_date_account_last4")
    result = lookup_account.run(ctx, {})
    assert (result.ok, result.data, result.say) == (False, {"error": "no_accounts"},
                                                     "고객님 명의로 조회되는 계좌가 없습니다.")
    result = lookup_account.run(ctx_for(None), {})
    assert (result.ok, result.data, result.say) == (False, {"error": "crm_unavailable"}, NO_CRM)
