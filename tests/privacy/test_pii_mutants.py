"""PII forms at their edges: a keypad entry kept as pressed only when it is a menu key or two, and what the agent
may say in place of a number whose digits it must not repeat at all."""

from agent.privacy import pii


def test_one_or_two_keys_are_kept_three_or_more_are_masked():
    assert [pii.mask_keypad(d) for d in ("", "0", "12")] == ["", "0", "12"]
    assert pii.mask_keypad("123") == "[키패드 입력]" and pii.mask_keypad("4532015112830366") == "[키패드 입력]"


def test_numbers_without_shown_digits_are_spoken_by_name_only():
    assert pii.replace_pii("주민번호 850312-1234565요", pii.Finding.spoken) == "주민번호 말씀하신 주민등록번호요"
    assert pii.replace_pii("계좌 110-123-456789요", pii.Finding.spoken) == "계좌 계좌번호 끝자리 6789요"
