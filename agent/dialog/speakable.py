"""Written Korean to the form a Korean agent says aloud, for the TTS engine only.

"12,000원" → "만 이천 원", "3월 12일" → "삼월 십이일", "오후 3시 30분" → "오후 세 시 삼십 분",
"3개" → "세 개", "010-1234-5678" → "공일공 일이삼사 오육칠팔", "주문번호 123456" → "주문번호 일이삼사오육".
Counting words take native numbers (하나, 둘 …) below 100 and Sino-Korean above; everything else is
Sino-Korean (num2words). Ids and phone numbers are read digit by digit with 공 for 0, as agents do.
The text stored as what was said stays the written form; only the engine gets this one.
Passes run in order and each turns the digits it reads into Hangul, so a later pass never re-reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

DIGITS = "영일이삼사오육칠팔구"
PHONE_DIGITS = "공일이삼사오육칠팔구"
LETTERS = {
    "A": "에이", "B": "비", "C": "씨", "D": "디", "E": "이", "F": "에프", "G": "지", "H": "에이치", "I": "아이",
    "J": "제이", "K": "케이", "L": "엘", "M": "엠", "N": "엔", "O": "오", "P": "피", "Q": "큐", "R": "알",
    "S": "에스", "T": "티", "U": "유", "V": "브이", "W": "더블유", "X": "엑스", "Y": "와이", "Z": "제트",
}
_NATIVE_ONES = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
_NATIVE_ONES_ALONE = ("", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉")
_NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
_MONTHS = ("", "일월", "이월", "삼월", "사월", "오월", "유월", "칠월", "팔월", "구월", "시월", "십일월", "십이월")

# Counters read with native numbers below 100 ("세 개", "두 명"); longest first so 박스 wins over 박.
NATIVE_COUNTERS = (
    "번째", "시간", "켤레", "박스", "상자", "봉지", "가지", "군데", "마리", "사람", "그릇", "접시", "묶음",
    "세트", "차례", "개", "명", "번", "시", "살", "병", "잔", "장", "권", "벌", "곳", "달", "통", "팩", "줄", "쌍",
    "채", "알", "판", "배", "칸", "대",
)
# Counters read with Sino-Korean numbers ("삼 층", "오 분").
SINO_COUNTERS = (
    "개월", "주일", "주년", "학년", "퍼센트", "포인트", "페이지", "인분", "번지", "호선", "단계", "분기",
    "원", "년", "일", "분", "초", "주", "층", "호", "회", "차", "등", "위", "건", "점", "인", "동", "도", "쪽", "평",
    "세", "박", "달러", "엔", "유로", "킬로", "미터", "그램", "리터", "기", "년도", "년생",
)
UNITS = {
    "kg": "킬로그램", "km": "킬로미터", "cm": "센티미터", "mm": "밀리미터", "ml": "밀리리터", "mL": "밀리리터",
    "m": "미터", "g": "그램", "L": "리터", "l": "리터", "GB": "기가바이트", "MB": "메가바이트", "TB": "테라바이트",
    "KB": "킬로바이트", "Mbps": "메가비피에스", "%": "퍼센트", "℃": "도", "°C": "도", "$": "달러",
}
ABBREVIATIONS = {
    "AS": "에이에스", "CS": "씨에스", "ARS": "에이알에스", "SMS": "에스엠에스", "OTP": "오티피", "ID": "아이디",
    "PC": "피씨", "TV": "티비", "QR": "큐알", "VIP": "브이아이피", "KT": "케이티", "SK": "에스케이", "LG": "엘지",
    "LTE": "엘티이", "5G": "파이브지", "USIM": "유심", "APP": "앱", "FAQ": "에프에이큐", "URL": "유알엘",
    "PIN": "핀", "OK": "오케이", "Wi-Fi": "와이파이", "WiFi": "와이파이", "e-mail": "이메일", "email": "이메일",
    "AI": "에이아이", "ATM": "에이티엠", "KB": "케이비", "NH": "엔에이치", "IBK": "아이비케이",
}
# A label before an id makes the id a code read digit by digit: "주문번호 123456", "송장 번호는 ABC-12".
_ID_LABEL = (r"(?:주문\s*번호|운송장\s*번호|송장\s*번호|운송장|송장|회원\s*번호|고객\s*번호|계좌\s*번호|카드\s*번호|"
             r"접수\s*번호|인증\s*번호|예약\s*번호|상품\s*코드|코드|번호|ID|아이디|끝\s*자리|뒷\s*자리|끝\s*번호)")
_ID = re.compile(_ID_LABEL + r"(\s*(?:은|는|이|가|:)?\s*)((?=[A-Za-z-]*\d)[A-Za-z\d][A-Za-z\d-]*)")
_PHONE = re.compile(r"(?<![\d-])(0\d{1,2})[-. ](\d{3,4})[-. ](\d{4})(?![\d-])")
# Masked numbers ("****6789") and short service numbers to call or text ("114로 문자") are digits too.
_MASKED = re.compile(r"(\*{2,})(\d+)")
_SERVICE = re.compile(r"(?<![\d,.])(1\d\d)(?=\s?(?:번|으로|로|에)?\s?(?:전화|문자|연락|신고))")
_HOTLINE = re.compile(r"(?<![\d-])(1[5-9]\d\d)-(\d{4})(?![\d-])")  # 1588-1234
_MOBILE = re.compile(r"(?<!\d)(01[016789])(\d{3,4})(\d{4})(?!\d)")
_DATE = re.compile(r"(?<!\d)(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)")
_CLOCK = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?![\d:])")
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_BIG = re.compile(r"(?<![\d.,])(\d+)(조|억|만|천)(\s?원)?")
_BUN_SINO = re.compile(r"\s?번\s*(?:을|를|으로|로|은|는|이|가)?\s*(?:누르|눌러|입력|선택|버튼|출구|창구|게이트|승강장)")
_LONG_RUN = re.compile(r"(?<![\d.,])(0\d+|\d{6,})(?![\d.,])")
_ANY_NUM = re.compile(r"(?<![\d.,])(" + _NUM + r")")
_ACRONYM = re.compile(r"(?<![A-Za-z])([A-Z]{2,4})(?![A-Za-z])")


def sino(n: int) -> str:
    """Sino-Korean reading: 12000 → 만 이천, 0 → 영."""
    return "영" if n == 0 else str(num2words(n, lang="ko"))


def native(n: int, alone: bool = False) -> str:
    """Native reading for 1…99 ("세" before a counter, "셋" alone); 100 and above fall back to Sino-Korean."""
    if not 0 < n < 100:
        return sino(n)
    tens, ones = divmod(n, 10)
    if ones == 0:
        return "스무" if n == 20 and not alone else _NATIVE_TENS[tens]
    return _NATIVE_TENS[tens] + (_NATIVE_ONES_ALONE if alone else _NATIVE_ONES)[ones]


def decimal(text: str) -> str:
    """"3.5" → 삼 점 오, "12,000" → 만 이천; digits after the point are read one by one."""
    whole, _, frac = text.replace(",", "").partition(".")
    said = sino(int(whole))
    return f"{said} 점 {''.join(DIGITS[int(d)] for d in frac)}" if frac else said


def digit_by_digit(code: str) -> str:
    """"010-1234" → 공일공 일이삼사; letters by their Korean names; hyphens become pauses."""
    groups = [g for g in re.split(r"[-\s.]+", code) if g]
    return " ".join("".join(PHONE_DIGITS[int(c)] if c.isdigit() else LETTERS.get(c.upper(), c) for c in g)
                    for g in groups)


def _counter_reading(number: str, counter: str, after: str) -> str:
    """The number before `counter` read as a Korean speaker would, with the counter."""
    if "." in number:
        return f"{decimal(number)} {counter}"
    n = int(number.replace(",", ""))
    if counter == "월" and 1 <= n <= 12:
        return _MONTHS[n]
    if counter == "일":
        return f"{sino(n)}일"
    if counter == "번째":
        return "첫 번째" if n == 1 else f"{native(n)} 번째"
    if counter == "번" and _BUN_SINO.match(counter + after):
        return f"{sino(n)} 번"  # "1번을 눌러 주세요": a button or exit number, not a count
    if counter == "대" and n % 10 == 0 and n >= 10:
        return f"{sino(n)} 대"  # "20대 고객": an age group
    if counter == "시" and n == 0:
        return "영 시"
    if counter in NATIVE_COUNTERS:
        return f"{native(n)} {counter}"
    return f"{sino(n)} {counter}"


_COUNTER_WORDS = sorted(NATIVE_COUNTERS + SINO_COUNTERS + ("월",), key=len, reverse=True)
_RANGE = re.compile(r"(?<![\d.,])(" + _NUM + r")\s?[~∼]\s?(?=(" + _NUM + r")\s?("
                    + "|".join(_COUNTER_WORDS) + r")?)")
# After a space only unambiguous counters count: "123456 주문" is not 123456 weeks.
_SPACED_COUNTERS = ("원", "달러", "엔", "개월", "개", "명", "번째", "시간", "분", "초", "년", "월", "일", "박스")
_COUNTED = re.compile(r"(?<![\d.,])(" + _NUM + r")(?:(" + "|".join(_COUNTER_WORDS) + r")|\s("
                      + "|".join(sorted(_SPACED_COUNTERS, key=len, reverse=True)) + r"))")
_UNIT_WORDS = sorted((u for u in UNITS if u != "$"), key=len, reverse=True)
_UNITS = re.compile(r"(?<![\d.,])(" + _NUM + r")\s?(" + "|".join(re.escape(u) for u in _UNIT_WORDS)
                    + r")(?![A-Za-z])")
_DOLLARS = re.compile(r"\$\s?(" + _NUM + r")")
_ABBREVIATION = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(a) for a in sorted(
    ABBREVIATIONS, key=len, reverse=True)) + r")(?![A-Za-z0-9])")
_ORDINAL_PREFIX = re.compile(r"제\s?(\d+)(?=\s?(?:조|항|호|장|회|차|기|편))")


def _phone(m: re.Match[str]) -> str:
    return digit_by_digit("-".join(g for g in m.groups() if g))


def _id(m: re.Match[str]) -> str:
    label = m.group(0)[: m.start(1) - m.start(0)]
    return f"{label}{m.group(1)}{digit_by_digit(m.group(2))}"


def _date(m: re.Match[str]) -> str:
    year, month, day = (int(g) for g in m.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{sino(year)} 년 {_MONTHS[month]} {sino(day)}일"


def _clock(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24 or minute > 59:
        return m.group(0)
    said = "영 시" if hour == 0 else f"{native(hour)} 시"
    return said if minute == 0 else f"{said} {sino(minute)} 분"


def _big(m: re.Match[str]) -> str:
    n, unit = int(m.group(1)), m.group(2)
    said = unit if n == 1 and unit in ("만", "천") else sino(n) + unit
    return said + (" 원" if m.group(3) else "")


def _range(m: re.Match[str]) -> str:
    """"2~3개" → 둘에서 세 개: the first number in its counter's system, said alone."""
    first, counter = m.group(1), m.group(3) or ""
    if "." in first:
        return f"{decimal(first)}에서 "
    n = int(first.replace(",", ""))
    if counter == "월" and 1 <= n <= 12:
        return f"{_MONTHS[n]}에서 "
    said = native(n, alone=True) if counter in NATIVE_COUNTERS and counter != "번째" else sino(n)
    return f"{said}에서 "


def _counted(m: re.Match[str]) -> str:
    return _counter_reading(m.group(1), m.group(2) or m.group(3), m.string[m.end():m.end() + 12])


def _unit(m: re.Match[str]) -> str:
    return f"{decimal(m.group(1))} {UNITS[m.group(2)]}"


def _bare(m: re.Match[str]) -> str:
    return decimal(m.group(1))


PASSES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_ABBREVIATION, lambda m: ABBREVIATIONS[m.group(1)]),
    (_ID, _id),
    (_MASKED, lambda m: f"{m.group(1)}{digit_by_digit(m.group(2))}"),
    (_SERVICE, lambda m: digit_by_digit(m.group(1))),
    (_PHONE, _phone),
    (_HOTLINE, _phone),
    (_MOBILE, _phone),
    (_DATE, _date),
    (_CLOCK, _clock),
    (_DOLLARS, lambda m: f"{decimal(m.group(1))} 달러"),
    (_ORDINAL_PREFIX, lambda m: f"제 {sino(int(m.group(1)))}"),
    (_BIG, _big),
    (_RANGE, _range),
    (_UNITS, _unit),
    (_COUNTED, _counted),
    (_LONG_RUN, lambda m: digit_by_digit(m.group(1))),
    (_ANY_NUM, _bare),
    (_ACRONYM, lambda m: "".join(LETTERS[c] for c in m.group(1))),
)


def speakable(text: str, language: str = "ko") -> str:
    """The spoken form of `text` for a Korean voice; other languages pass through unchanged."""
    if language != "ko" or not text:
        return text
    for pattern, reading in PASSES:
        text = pattern.sub(reading, text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()
