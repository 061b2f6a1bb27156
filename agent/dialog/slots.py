"""Slot capture from transcripts: digit strings read in Korean (일이삼, 공/영, "12삼456"), order numbers,
phone numbers, last-4 digits, names and birth dates. Pure functions; no I/O.
"""

from __future__ import annotations

import re
from datetime import date

DIGIT_WORDS = {"공": "0", "영": "0", "빵": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5",
               "육": "6", "륙": "6", "칠": "7", "팔": "8", "구": "9"}
_DIGIT_CHARS = "0123456789" + "".join(DIGIT_WORDS)
# Endings a caller glues onto a number ("123456이요", "오육칠팔입니다"); stripped before reading digits.
_PARTICLES = re.compile(
    r"(?:번이요|번이에요|번입니다|번이고요|번이고|번|이에요|이예요|예요|에요|이요|입니다|이고요|이고|이구요|"
    r"인데요|인데|이며|요|은|는|을|를|으로|로|까지|이랑|랑|하고|고|이)$"
)
_TOKEN_SPLIT = re.compile(r"[\s,.\-~/()]+")
_SINO_UNITS = {"십": 10, "백": 100, "천": 1000}
_SINO_DIGITS = {k: int(v) for k, v in DIGIT_WORDS.items() if k not in ("공", "영", "빵")}


def _token_digits(token: str) -> str | None:
    """The digits of one token made only of digit characters (after an ending is stripped), else None."""
    if token and all(ch in _DIGIT_CHARS for ch in token):
        return "".join(DIGIT_WORDS.get(ch, ch) for ch in token)
    m = _PARTICLES.search(token)
    if m and m.start() > 0:
        stem = token[: m.start()]
        # A bare trailing "이" is a particle only after a full number; "일이" alone means "12".
        if m.group(0) == "이" and len(stem) < 6:
            return None
        if all(ch in _DIGIT_CHARS for ch in stem):
            return "".join(DIGIT_WORDS.get(ch, ch) for ch in stem)
    return None


def digit_runs(text: str) -> list[str]:
    """Digit strings in `text`; neighbouring digit tokens join ("공일공 일이삼사" → "0101234")."""
    runs: list[str] = []
    current = ""
    for token in _TOKEN_SPLIT.split(text):
        digits = _token_digits(token)
        if digits is None:
            if current:
                runs.append(current)
            current = ""
            continue
        current += digits
        # A token that carried an ending ("…입니다") closes the number.
        if not all(ch in _DIGIT_CHARS for ch in token):
            runs.append(current)
            current = ""
    if current:
        runs.append(current)
    return runs


_SUBJECT_I = re.compile(r"(?<=[공영일이삼사오육칠팔구])이(?=[\s.,?!]|$)")


def order_numbers(text: str, min_len: int = 6, max_len: int = 14) -> list[str]:
    """Candidate order or tracking numbers: digit runs of a plausible length that are not phone numbers.

    "일이삼사오육이 안 와요" is ambiguous (…62, or …6 plus the subject particle), so both readings are
    returned, the literal one first; the caller keeps the one the CRM knows.
    """
    found: list[str] = []
    for source in (text, _SUBJECT_I.sub("", text)):
        for r in digit_runs(source):
            if min_len <= len(r) <= max_len and not is_mobile(r) and r not in found:
                found.append(r)
    return found


def is_mobile(digits: str) -> bool:
    return bool(re.fullmatch(r"01[016789]\d{7,8}", digits))


def phone_number(text: str) -> str | None:
    for run in digit_runs(text):
        if is_mobile(run):
            return run
    return None


def last4(text: str) -> str | None:
    """The 4 digits a caller gives as "뒷자리"/"끝 번호"/"last four", or a lone 4-digit run."""
    runs = digit_runs(text)
    fours = [r for r in runs if len(r) == 4]
    if fours:
        return fours[-1]
    longer = [r for r in runs if len(r) > 4]
    if longer and re.search(r"뒷\s*자리|뒤\s*(?:네|4)\s*자리|끝\s*(?:번호|자리)|last", text):
        return longer[-1][-4:]
    return None


_NAME_AFTER = re.compile(r"(?:이름은|이름이|성함은|성함이|저는|전)\s*([가-힣]{2,4}?)(?:이고요|이고|이에요|이예요|"
                         r"예요|에요|입니다|이요|요|고|라고|이라고|\s|$)")
_BARE_NAME = re.compile(r"^\s*([가-힣]{2,4}?)(?:이고요|이고|이에요|예요|에요|입니다|이요|요)?[.!?\s]*$")
_COMMON_SURNAMES = set("김이박최정강조윤장임한오서신권황안송류전홍고문양손배백허유남심노하곽성차주우구"
                       "민진나지엄채원천방공현함변염여추도소석선설마길연위표명기반왕금옥육인맹제모탁국어은편용예봉경")
_NOT_NAMES = {"고객", "주문", "배송", "반품", "교환", "환불", "상담원", "감사", "안녕"}
# Three-syllable words that start like a surname: never taken for a name.
_NOT_NAME_TOKENS = {"뒷자리", "이름은", "전화번", "휴대폰", "이번에", "오늘은", "정말로", "안녕하", "감사합", "고객님",
                    "주문번", "배송지", "이메일", "조회해", "확인해", "변경해", "반품해", "교환해", "하나요"}


_NAME_TOKEN = re.compile(r"^([가-힣]{3})(?:이고요|이고|이에요|이예요|예요|에요|입니다|이요|요|고|이구요|"
                         r"인데요)?[.,!?]*$")


def _plausible(name: str) -> bool:
    return len(name) >= 2 and name[0] in _COMMON_SURNAMES and name not in _NOT_NAMES


def person_name(text: str, bare_ok: bool = False) -> str | None:
    """A Korean full name ("제 이름은 김민지입니다" → 김민지). When the agent has just asked for a name
    (`bare_ok`), also "김민지요" alone or a three-syllable name token ("김민지고 뒷자리는 …")."""
    m = _NAME_AFTER.search(text)
    if m and _plausible(m.group(1)):
        return m.group(1)
    if not bare_ok:
        return None
    m = _BARE_NAME.match(text)
    if m and _plausible(m.group(1)):
        return m.group(1)
    for token in text.split():
        m = _NAME_TOKEN.match(token)
        if m and _plausible(m.group(1)) and m.group(1) not in _NOT_NAME_TOKENS:
            return m.group(1)
    return None


def sino_number(word: str) -> int | None:
    """Reads a Sino-Korean numeral ("천구백팔십오" → 1985, "십이" → 12); None if it is not one."""
    if not word or any(ch not in _SINO_DIGITS and ch not in _SINO_UNITS for ch in word):
        return None
    total, pending = 0, 0
    for ch in word:
        if ch in _SINO_UNITS:
            total += (pending or 1) * _SINO_UNITS[ch]
            pending = 0
        else:
            pending = pending * 10 + _SINO_DIGITS[ch] if pending else _SINO_DIGITS[ch]
    return total + pending


def _year(raw: int, today: date) -> int:
    if raw >= 1000:
        return raw
    # Two-digit years: the most recent past century that makes the caller at least 0 years old.
    century = today.year // 100 * 100
    return century + raw if century + raw <= today.year else century - 100 + raw


_DATE_WORDS = re.compile(r"([0-9가-힣]+?)\s*년\s*([0-9가-힣]+?)\s*월\s*([0-9가-힣]+?)\s*일")


def birth_date(text: str, today: date | None = None) -> date | None:
    """A birth date said as "1985년 3월 12일", "팔십오년 삼월 십이일", or six digits YYMMDD / eight YYYYMMDD."""
    today = today or date.today()
    m = _DATE_WORDS.search(text)
    if m:
        parts = [int(p) if p.isdigit() else sino_number(p) for p in m.groups()]
        if all(p is not None for p in parts):
            y, mo, d = parts  # type: ignore[misc]
            try:
                return date(_year(y, today), mo, d)
            except ValueError:
                return None
    for run in digit_runs(text):
        try:
            if len(run) == 6:
                return date(_year(int(run[:2]), today), int(run[2:4]), int(run[4:]))
            if len(run) == 8:
                return date(int(run[:4]), int(run[4:6]), int(run[6:]))
        except ValueError:
            continue
    return None
