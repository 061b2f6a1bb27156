"""Slot capture from Korean transcripts: spoken digits, order/phone numbers, names, birth dates."""

from __future__ import annotations

from datetime import date

import pytest

from agent.dialog import slots


@pytest.mark.parametrize(("text", "expected"), [
    ("주문번호 일이삼사오육이요", "123456"),
    ("12삼456", "123456"),
    ("일 이 삼 사 오 육", "123456"),
    ("주문번호는 123456입니다", "123456"),
    ("공일이 삼사오", "012345"),
    ("영구팔칠육오번이에요", "098765"),
    ("구매한 주문 일이삼사오육 확인해 주세요", "123456"),
])
def test_order_numbers_from_spoken_digits(text: str, expected: str) -> None:
    assert slots.order_numbers(text)[0] == expected


def test_subject_particle_after_digits_gives_both_readings() -> None:
    assert slots.order_numbers("일이삼사오육이 아직 안 와요") == ["1234562", "123456"]


def test_words_that_contain_digit_syllables_are_not_numbers() -> None:
    assert slots.order_numbers("오늘 주문한 거 이 주문 언제 와요") == []
    assert slots.digit_runs("사이즈가 작아요") == []


@pytest.mark.parametrize("text", ["공일공 일이삼사 오육칠팔", "010-1234-5678", "010 일이삼사 5678"])
def test_phone_numbers(text: str) -> None:
    assert slots.phone_number(text) == "01012345678"
    assert slots.order_numbers(text) == []


def test_last4() -> None:
    assert slots.last4("뒷자리는 오육칠팔이에요") == "5678"
    assert slots.last4("휴대폰 뒷자리 01012345678") == "5678"
    assert slots.last4("모르겠어요") is None


@pytest.mark.parametrize(("text", "bare", "name"), [
    ("제 이름은 김민지입니다", False, "김민지"),
    ("김민지요", True, "김민지"),
    ("김민지요", False, None),
    ("김민지요 뒷자리는 오육칠팔이에요", True, "김민지"),
    ("오늘 주문했는데요", True, None),
])
def test_person_name(text: str, bare: bool, name: str | None) -> None:
    assert slots.person_name(text, bare_ok=bare) == name


@pytest.mark.parametrize(("text", "born"), [
    ("1985년 3월 12일이요", date(1985, 3, 12)),
    ("팔십오년 삼월 십이일", date(1985, 3, 12)),
    ("천구백구십년 칠월 이십오일", date(1990, 7, 25)),
    ("생년월일은 850312입니다", date(1985, 3, 12)),
    ("19850312", date(1985, 3, 12)),
])
def test_birth_dates(text: str, born: date) -> None:
    assert slots.birth_date(text, today=date(2026, 1, 1)) == born


def test_sino_numbers() -> None:
    assert slots.sino_number("천구백팔십오") == 1985
    assert slots.sino_number("십이") == 12
    assert slots.sino_number("이십") == 20
    assert slots.sino_number("주문") is None
