"""update_customer_info both ways (nothing is written before the caller is verified; after verify_identity the
row in PostgreSQL changes), and only with a value the caller said, compared without spaces, dots and case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tool_support import fresh_database, tool_ctx

from agent.dialog.tools import update_customer_info, verify_identity
from agent.dialog.tools.base import NEED_IDENTITY_ECOMMERCE, NO_CRM, ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

OLD_EMAIL = "minji.kim@example.com"  # 김민지, C1001, 010-1234-5678


@pytest.fixture
def db(pg_dsn: str) -> Iterator[Database]:
    yield from fresh_database(pg_dsn)  # these tests write: each starts from the demo data


def ctx_for(crm: Any, caller: str = "0299998888") -> ToolContext:
    return tool_ctx(crm, caller)


def _customer(db: Database) -> dict[str, Any]:
    return EmbeddedCrm(db).get_customer("C1001") or {}


def _verify(ctx: ToolContext) -> None:
    ctx.state.add_caller("김민지요, 뒷자리 5678")
    assert verify_identity.run(ctx, {"customer_name": "김민지", "phone_last4": "5678"}).ok


def test_before_verification_nothing_is_written_after_it_the_row_changes(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db))  # a landline that is nobody's
    ctx.state.add_caller("이메일을 Minji-New@Example.com 으로 바꿔 주세요")
    args = {"field": "email", "new_value": "minji.new@example.com"}
    result = update_customer_info.run(ctx, args)
    assert (result.ok, result.say) == (False, NEED_IDENTITY_ECOMMERCE)
    assert result.data == {"error": "verification_required", "need": ["customer_name", "phone_last4"]}
    assert ctx.state.pending == "identity" and _customer(db)["email"] == OLD_EMAIL
    _verify(ctx)
    result = update_customer_info.run(ctx, args)
    assert (result.ok, result.data) == (True, {"field": "email", "updated": True})
    assert result.say == "네, 이메일을 말씀하신 내용으로 변경해 드렸어요."
    assert _customer(db)["email"] == "minji.new@example.com"


def test_someone_elses_id_is_refused_the_callers_own_is_accepted(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db))
    _verify(ctx)
    ctx.state.add_caller("주소를 서울특별시 중구 세종대로 110으로 바꿔 주세요")
    args = {"field": "address", "new_value": "서울특별시 중구 세종대로 110"}
    result = update_customer_info.run(ctx, {**args, "customer_id": "C1002"})
    assert result.data["error"] == "verification_required"
    assert EmbeddedCrm(db).get_customer("C1002")["address"].startswith("부산")
    result = update_customer_info.run(ctx, {**args, "customer_id": "C1001"})
    assert result.ok and result.say == "네, 주소를 말씀하신 내용으로 변경해 드렸어요."
    assert _customer(db)["address"] == "서울특별시 중구 세종대로 110"


def test_a_phone_number_is_stored_as_digits_the_caller_said(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="+82 10-1234-5678")  # the caller ID proves C1001
    result = update_customer_info.run(ctx, {"field": "phone", "new_value": "010-9876-5432"})
    assert (result.ok, result.data, result.say) == (
        False, {"error": "value_not_from_caller"}, "바꾸실 연락처를 한 번 또박또박 말씀해 주시겠어요?")
    assert ctx.state.pending == "update:phone" and _customer(db)["phone"] == "01012345678"
    ctx.state.add_caller("새 번호는 010-9876-5432예요")
    result = update_customer_info.run(ctx, {"field": "phone", "new_value": "010-9876-5432"})
    assert result.ok and result.say == "네, 연락처를 말씀하신 내용으로 변경해 드렸어요."
    assert _customer(db)["phone"] == "01098765432"


@pytest.mark.parametrize("value", ["", "   ", "minji.other@example.com"])
def test_an_empty_or_unsaid_value_is_never_written(db: Database, value: str) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="01012345678")
    ctx.state.add_caller("이메일 바꾸고 싶어요")
    result = update_customer_info.run(ctx, {"field": "email", "new_value": value})
    assert (result.data, result.say) == ({"error": "value_not_from_caller"},
                                         "바꾸실 이메일을 한 번 또박또박 말씀해 주시겠어요?")
    assert ctx.state.pending == "update:email" and _customer(db)["email"] == OLD_EMAIL


def test_a_digit_string_that_is_no_phone_number_is_refused(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="01012345678")
    ctx.state.add_caller("번호는 1234 5678이요")
    result = update_customer_info.run(ctx, {"field": "phone", "new_value": "1234 5678"})
    assert result.data == {"error": "value_not_from_caller"} and _customer(db)["phone"] == "01012345678"


def test_refusals_before_any_lookup(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="01012345678")
    ctx.state.add_caller("이름을 김철수로 바꿔 주세요")
    result = update_customer_info.run(ctx, {"field": "name", "new_value": "김철수"})
    assert (result.data, result.say) == (
        {"error": "bad_field"}, "주소, 이메일, 연락처 중에서 어떤 정보를 바꾸실지 말씀해 주시겠어요?")
    ctx.state.writes_blocked = True
    result = update_customer_info.run(ctx, {"field": "email", "new_value": OLD_EMAIL})
    assert (result.data, result.say) == ({"error": "blocked"}, "죄송하지만 그 요청은 처리해 드릴 수 없어요.")
    result = update_customer_info.run(ctx_for(None), {"field": "email", "new_value": OLD_EMAIL})
    assert (result.data, result.say) == ({"error": "crm_unavailable"}, NO_CRM)


def test_spacing_and_punctuation_may_differ_from_what_the_caller_said(db: Database) -> None:
    ctx = ctx_for(EmbeddedCrm(db), caller="01012345678")
    ctx.state.add_caller("주소는 서울특별시 중구,  세종대로 110-1 이에요")
    result = update_customer_info.run(ctx, {"field": "address", "new_value": "서울특별시 중구 세종대로 1101"})
    assert result.ok and _customer(db)["address"] == "서울특별시 중구 세종대로 1101"
