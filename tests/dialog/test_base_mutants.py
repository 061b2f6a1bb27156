"""What every tool shares: the tool message the model reads, the schema it is offered, caller-ID proof of
identity (and when it is no proof), and how dates, amounts and particles are spoken."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from tool_support import tool_ctx

from agent.dialog.tools import check_delivery, escalate_to_human
from agent.dialog.tools.base import (
    NEED_IDENTITY_BANKING,
    NEED_IDENTITY_ECOMMERCE,
    ToolResult,
    caller_customer,
    is_verified_for,
    josa,
    national_phone,
    need_identity,
    refuse,
    say_date,
    say_won,
    spec_from_module,
    to_date,
)


def test_the_tool_message_carries_ok_the_data_and_the_suggested_reply() -> None:
    assert ToolResult(ok=True, data={"a": 1}, say="네").message() == {"ok": True, "a": 1, "suggested_reply": "네"}
    assert ToolResult(ok=True).message() == {"ok": True}
    refused = refuse("missing", "말씀해 주세요", need=["x"])
    assert (refused.ok, refused.data, refused.say, refused.escalate) == (
        False, {"error": "missing", "need": ["x"]}, "말씀해 주세요", None)


def test_a_tool_is_offered_with_its_module_name_docstring_and_parameters() -> None:
    spec = spec_from_module(check_delivery)
    assert (spec.name, spec.writes, spec.run) == ("check_delivery", False, check_delivery.run)
    assert spec.description.startswith("배송 현재 위치와 예상 도착일을 확인합니다.\n운송장 번호")
    assert spec.schema() == {"type": "function", "function": {
        "name": "check_delivery", "description": spec.description, "parameters": check_delivery.PARAMETERS}}
    assert spec_from_module(escalate_to_human).name == "escalate_to_human"


@pytest.mark.parametrize(("caller", "national"), [
    ("+82 10-1234-5678", "01012345678"), ("821012345678", "01012345678"), ("010-1234-5678", "01012345678"),
    ("8210123456", "8210123456"), ("82101234567", "0101234567"), ("8212345", "8212345"), ("", "")])
def test_caller_id_in_the_form_the_crm_stores(caller: str, national: str) -> None:
    assert national_phone(caller) == national


class Crm:
    def __init__(self, phone: str = "01012345678", found: int = 1):
        self.phone = phone
        self.found = found
        self.calls: list[str] = []

    def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        self.calls.append(customer_id)
        return {"customer_id": customer_id, "phone": self.phone} if customer_id == "C1" else None

    def find_customers(self, phone: str | None = None, **_: Any) -> list[dict[str, Any]]:
        self.calls.append(phone or "")
        return [{"customer_id": f"C{i + 1}"} for i in range(self.found)] if phone == self.phone else []


def test_a_matching_caller_id_proves_the_customer_and_is_remembered() -> None:
    ctx = tool_ctx(Crm(), "+82-10-1234-5678")
    assert is_verified_for(ctx, "C1")
    assert (ctx.state.verified_customer_id, ctx.state.verified_by) == ("C1", "caller_id")
    assert ctx.state.tried == ["본인 확인 완료"]
    assert not is_verified_for(ctx, "C2")  # once proven, another customer is not


@pytest.mark.parametrize(("caller", "pack", "phone"), [
    ("0299998888", "ecommerce", "01012345678"),  # someone else's number
    ("123456789", "ecommerce", "123456789"),  # too short to be a phone number, even if it matches
    ("01012345678", "banking", "01012345678"),  # a bank never takes caller ID as proof
])
def test_caller_id_is_no_proof(caller: str, pack: str, phone: str) -> None:
    ctx = tool_ctx(Crm(phone), caller, pack)
    assert not is_verified_for(ctx, "C1") and ctx.state.verified_customer_id is None
    assert caller_customer(ctx) is None and ctx.state.verified_customer_id is None


def test_a_customer_without_a_phone_is_not_proven() -> None:
    class NoPhone(Crm):
        def get_customer(self, customer_id: str) -> dict[str, Any] | None:
            return {"customer_id": customer_id}

    assert not is_verified_for(tool_ctx(NoPhone(), "01012345678"), "C1")
    assert not is_verified_for(tool_ctx(None, "01012345678"), "C1")


def test_the_caller_ids_customer_only_when_exactly_one_has_that_number() -> None:
    ctx = tool_ctx(Crm(), "+82 10 1234 5678")
    assert caller_customer(ctx) == "C1" and ctx.state.verified_by == "caller_id"
    assert ctx.crm.calls == ["01012345678"]
    assert caller_customer(ctx) == "C1" and ctx.crm.calls == ["01012345678"]  # remembered, not looked up again
    ctx = tool_ctx(Crm(found=2), "01012345678")
    assert caller_customer(ctx) is None and ctx.state.verified_customer_id is None
    assert caller_customer(tool_ctx(None, "01012345678")) is None
    ctx = tool_ctx(Crm(), "0299998888", "banking")
    ctx.state.verify("C7", "birth_date_account_last4")
    assert caller_customer(ctx) == "C7"


def test_need_identity_asks_for_what_the_pack_verifies_with() -> None:
    ctx = tool_ctx(None, "", "banking")
    result = need_identity(ctx)
    assert (result.ok, result.data, result.say) == (
        False, {"error": "verification_required", "need": ["birth_date", "account_last4"]}, NEED_IDENTITY_BANKING)
    assert ctx.state.pending == "identity"
    result = need_identity(tool_ctx(None, "", "telecom"))
    assert (result.data["need"], result.say) == (["customer_name", "phone_last4"], NEED_IDENTITY_ECOMMERCE)


TODAY = date(2026, 11, 29)


@pytest.mark.parametrize(("value", "said"), [
    ("2026-11-29", "오늘"), ("2026-11-30", "내일"), ("2026-12-01", "모레"), ("2026-11-28", "어제"),
    ("2026-11-27", "그저께"), ("2026-12-02", "12월 2일"), ("2026-11-26", "11월 26일"),
    ("2026-11-30T01:00:00Z", "내일"), (datetime(2026, 11, 28, 23, 0), "어제"), (date(2026, 1, 5), "1월 5일"),
    ("not a date", ""), ("", ""), (None, ""), (20261129, "")])
def test_dates_are_said_relative_to_today(value: Any, said: str) -> None:
    assert say_date(value, TODAY) == said


def test_to_date_keeps_the_date_of_a_timestamp() -> None:
    assert to_date(datetime(2026, 11, 28, 23, 59)) == date(2026, 11, 28)
    assert to_date("2026-11-28T23:59:00+09:00") == date(2026, 11, 28)


@pytest.mark.parametrize(("amount", "said"), [(1532000, "1,532,000원"), ("59000", "59,000원"), (0, "0원"),
                                              (None, ""), ("많이", "")])
def test_amounts_in_won(amount: Any, said: str) -> None:
    assert say_won(amount) == said


@pytest.mark.parametrize(("word", "pair", "said"), [
    ("이메일", "을/를", "이메일을"), ("주소", "을/를", "주소를"), ("연락처", "을/를", "연락처를"),
    ("한진택배", "으로/로", "한진택배로"), ("CJ대한통운", "으로/로", "CJ대한통운으로"), ("서울", "으로/로", "서울로"),
    ("우체국", "으로/로", "우체국으로"), ("힣", "이/가", "힣이"), ("가", "이/가", "가가"), ("", "은/는", "는"),
    ("ABC", "은/는", "ABC는")])
def test_particles_follow_the_last_syllable(word: str, pair: str, said: str) -> None:
    assert josa(word, pair) == said


def test_a_ten_digit_caller_id_is_a_phone_number() -> None:
    """Old 011 mobiles and Seoul landlines have ten digits; they prove their owner like eleven-digit ones."""
    assert is_verified_for(tool_ctx(Crm("0111234567"), "011-123-4567"), "C1")
    ctx = tool_ctx(Crm("0212345678"), "+82 2-1234-5678")
    assert caller_customer(ctx) == "C1" and ctx.state.verified_by == "caller_id"


def test_a_latin_word_takes_the_particle_without_a_final_consonant() -> None:
    assert josa("data", "은/는") == "data는" and josa("Wi-Fi", "을/를") == "Wi-Fi를"
