"""verify_identity: what it answers the model for each missing, unsaid or wrong value (and that the call stays
unverified), and what a proven identity leaves in the dialog state, for e-commerce and for banking."""

from __future__ import annotations

from typing import Any

import pytest
from dialog_support import FakeClock

from agent.dialog.escalation import EscalationManager
from agent.dialog.packs import load_pack
from agent.dialog.policy import CallInfo
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState
from agent.dialog.tools import verify_identity
from agent.dialog.tools.base import NO_CRM, ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

MISSING = "본인 확인을 위해 주문하신 분 성함과 휴대폰 번호 뒷 네 자리를 말씀해 주세요."
NOT_SAID = "본인 확인을 위해 성함과 휴대폰 번호 뒷 네 자리를 직접 말씀해 주시겠어요?"
BANK_MISSING = "본인 확인을 위해 생년월일과 계좌번호 뒷 네 자리를 말씀해 주세요."
BANK_NOT_SAID = "본인 확인을 위해 생년월일과 계좌번호 뒷 네 자리를 직접 말씀해 주시겠어요?"
BANK_FAILED = "죄송하지만 말씀하신 정보로는 본인 확인이 되지 않았습니다. 한 번 더 말씀해 주시겠습니까?"


def ctx_for(crm: Any, pack: str = "ecommerce", *said: str) -> ToolContext:
    state = DialogState(call=CallInfo(call_id="t1", caller=""), pack=load_pack(pack), clock=FakeClock())
    for text in said:
        state.add_caller(text)
    return ToolContext(state=state, crm=crm, kb=None, escalation=EscalationManager(EscalationSettings()))


def _refused(ctx: ToolContext, args: dict[str, Any], error: str, say: str) -> None:
    ctx.state.pending = None
    result = verify_identity.run(ctx, args)
    assert (result.ok, result.data, result.say) == (False, {"error": error}, say)
    assert ctx.state.pending == "identity" and ctx.state.verified_customer_id is None


class TwoMatches:
    """A CRM where two customers share the name and the last four digits."""

    def find_customers(self, **_: Any) -> list[dict[str, Any]]:
        return [{"customer_id": "C1", "name": "김민지"}, {"customer_id": "C2", "name": "김민지"}]


def test_without_a_crm_nothing_is_verified() -> None:
    ctx = ctx_for(None, "ecommerce", "김민지요 5678")
    result = verify_identity.run(ctx, {"customer_name": "김민지", "phone_last4": "5678"})
    assert (result.ok, result.data["error"], result.say) == (False, "crm_unavailable", NO_CRM)
    assert ctx.state.verified_customer_id is None


@pytest.mark.parametrize("args", [{"phone_last4": "5678"}, {"customer_name": "  ", "phone_last4": "5678"},
                                  {"customer_name": "김민지", "phone_last4": "678"},
                                  {"customer_name": "김민지"}])
def test_a_missing_name_or_four_digits_asks_for_both(db: Database, args: dict[str, Any]) -> None:
    _refused(ctx_for(EmbeddedCrm(db), "ecommerce", "김민지요 5678 678"), args, "missing", MISSING)


def test_values_the_caller_did_not_say_do_not_verify(db: Database) -> None:
    args = {"customer_name": "김민지", "phone_last4": "5678"}
    _refused(ctx_for(EmbeddedCrm(db), "ecommerce", "김민지예요"), args, "not_said_by_caller", NOT_SAID)
    _refused(ctx_for(EmbeddedCrm(db), "ecommerce", "뒷자리는 5678이요"), args, "not_said_by_caller", NOT_SAID)


def test_a_wrong_or_ambiguous_pair_is_no_match(db: Database) -> None:
    failed = verify_identity.FAILED
    _refused(ctx_for(EmbeddedCrm(db), "ecommerce", "김민지 9999"),
             {"customer_name": "김민지", "phone_last4": "9999"}, "no_match", failed)
    _refused(ctx_for(TwoMatches(), "ecommerce", "김민지 5678"),
             {"customer_name": "김민지", "phone_last4": "5678"}, "no_match", failed)


def test_the_right_pair_said_by_the_caller_verifies(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), "ecommerce", "김민지요, 번호는 010-1234-5678이에요")
    ctx.state.pending = "identity"
    result = verify_identity.run(ctx, {"customer_name": " 김민지 ", "phone_last4": "010-1234-5678"})
    assert (result.ok, result.data, result.say) == (True, {"verified": True}, "김민지 고객님, 본인 확인되었습니다.")
    assert (ctx.state.verified_customer_id, ctx.state.verified_by) == ("C1001", "name_phone_last4")
    assert ctx.state.pending is None


@pytest.mark.parametrize("args", [{"account_last4": "6789"}, {"birth_date": "1985-13-45", "account_last4": "6789"},
                                  {"birth_date": "1985-03-12", "account_last4": "789"}])
def test_banking_asks_for_birth_date_and_account_digits(db: Database, args: dict[str, Any]) -> None:
    _refused(ctx_for(EmbeddedCrm(db), "banking", "1985년 3월 12일생이고 6789 789"), args, "missing", BANK_MISSING)


def test_banking_values_must_come_from_the_caller(db: Database) -> None:
    args = {"birth_date": "1985-03-12", "account_last4": "6789"}
    _refused(ctx_for(EmbeddedCrm(db), "banking", "1985년 3월 12일생이에요"), args, "not_said_by_caller", BANK_NOT_SAID)
    _refused(ctx_for(EmbeddedCrm(db), "banking", "계좌 뒷자리 6789"), args, "not_said_by_caller", BANK_NOT_SAID)


def test_banking_wrong_pair_and_right_pair(db: Database) -> None:
    _refused(ctx_for(EmbeddedCrm(db), "banking", "1985년 3월 12일생, 뒷자리 0000"),
             {"birth_date": "1985-03-12", "account_last4": "0000"}, "no_match", BANK_FAILED)
    ctx = ctx_for(EmbeddedCrm(db), "banking", "생년월일은 1985년 3월 12일이고 계좌 뒷자리는 6789예요")
    ctx.state.pending = "identity"
    result = verify_identity.run(ctx, {"birth_date": "1985-03-12", "account_last4": "110-1234-56789"})
    assert (result.ok, result.data, result.say) == (True, {"verified": True}, "본인 확인되었습니다. 감사합니다.")
    assert (ctx.state.verified_customer_id, ctx.state.verified_by) == ("C1001", "birth_date_account_last4")
    assert ctx.state.pending is None


def test_banking_never_takes_the_name_and_phone_route(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), "banking", "김민지요 5678")
    result = verify_identity.run(ctx, {"customer_name": "김민지", "phone_last4": "5678"})
    assert result.data["error"] == "missing" and ctx.state.verified_customer_id is None


def test_the_right_digits_with_another_customers_name_verify_nobody(db: Database) -> None:
    # 5678 ends 김민지's number; 이서준 is another customer: the pair must belong to one person.
    _refused(ctx_for(EmbeddedCrm(db), "ecommerce", "이서준이고 뒷자리는 5678이에요"),
             {"customer_name": "이서준", "phone_last4": "5678"}, "no_match", verify_identity.FAILED)
