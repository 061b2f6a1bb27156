"""Personal data in Korean call transcripts: validated detectors and the masked forms kept at rest.

Resident/foreigner registration numbers (checksum via python-stdnum), card numbers (Luhn + issuer length, so
a 13-digit 우체국 tracking number is not a card), bank accounts (Korean bank formats, or context words), phone
numbers (phonenumbers, KR), passwords/PINs (context), e-mail, birth dates and addresses, in digits and in
spoken Korean digits (`spoken.digit_runs`). `mask_text` is what every store, log and summary goes through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import phonenumbers
from stdnum import luhn
from stdnum.kr import rrn as kr_rrn

from agent.privacy.spoken import Piece, Run, digit_runs

CARD, RRN, ACCOUNT, PHONE, PIN, EMAIL, BIRTH_DATE, ADDRESS = (
    "card", "rrn", "account", "phone", "pin", "email", "birth_date", "address")
KEYPAD = "keypad"  # digits typed on the keypad: how a PIN is entered, so never kept as typed
KINDS = (CARD, RRN, ACCOUNT, PHONE, PIN, EMAIL, BIRTH_DATE, ADDRESS, KEYPAD)
# Kinds a caller should never have to say to the agent (the dialog answers them with a warning).
SECRET_KINDS = frozenset({CARD, RRN, PIN})

_LABELS = {CARD: "카드번호", RRN: "주민등록번호", ACCOUNT: "계좌번호", PHONE: "전화번호", PIN: "비밀번호",
           EMAIL: "이메일", BIRTH_DATE: "생년월일", ADDRESS: "주소", KEYPAD: "키패드 입력"}
_SHOW_LAST4 = frozenset({CARD, ACCOUNT, PHONE})

_CARD_WORDS = re.compile(r"카드|card|신용|체크", re.I)
_RRN_WORDS = re.compile(r"주민|등록\s*번호|외국인")
_ACCOUNT_WORDS = re.compile(r"계좌|통장|은행|입금|이체|송금|뱅크|예금|적금|account|"
                            r"국민|신한|우리|농협|기업|새마을|신협", re.I)
_PIN_WORDS = re.compile(r"비밀\s*번호|비번|핀\s*번호|\bpin\b|패스\s*워드|password|암호|otp|보안\s*카드|cvc|cvv|"
                        r"인증\s*번호", re.I)
_BIRTH_WORDS = re.compile(r"생년\s*월일|생일|태어|출생|앞\s*자리")
# Korean bank account layouts (hyphen groups): 신한 3-3-6, 우리 4-3-6, 하나 3-6-5, 국민/우체국 6-2-6,
# 농협 3-4-4-2, 기업 3-6-2-3, SC 3-2-6, 카카오 4-2-7, 씨티 3-6-3, 새마을 4-2-6-1 …
_BANK_LAYOUTS = frozenset({(3, 3, 6), (4, 3, 6), (3, 6, 5), (6, 2, 6), (3, 4, 4, 2), (3, 6, 2, 3), (3, 2, 6),
                           (4, 2, 7), (3, 6, 3), (4, 2, 6, 1), (3, 2, 5), (6, 2, 5), (3, 3, 5)})
# Written passwords: letters and digits after a password word ("비밀번호는 abc123!").
_PASSWORD_VALUE = re.compile(rf"(?:{_PIN_WORDS.pattern})\s*(?:은|는|이|가|:|is)?\s*"
                             r"(?=[A-Za-z0-9!@#$%^&*]*\d)([A-Za-z0-9!@#$%^&*]{4,})", re.I)
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+\s*(?:@|골뱅이|앳)\s*(?:[A-Za-z0-9-]+(?:\s*(?:\.|점|닷)\s*[A-Za-z]{2,}){1,3}|"
    r"(?:네이버|지메일|다음|한메일|카카오|네이트|야후|핫메일)\s*"
    r"(?:\.\s*com|닷\s*컴|점\s*컴|닷\s*넷|점\s*넷|\.\s*net))", re.I)
_SINO = "영공일이삼사오육칠팔구십백천"
_DATE_WORDS = re.compile(rf"(\d{{4}}|\d{{2}}|[{_SINO}]+)\s*년\s*(\d{{1,2}}|[{_SINO}]+)\s*월\s*"
                         rf"(\d{{1,2}}|[{_SINO}]+)\s*일")
# Numbers that are not personal: after one of these words, an earlier "비밀번호" or "계좌" no longer applies.
_OTHER_NUMBER_WORDS = re.compile(r"주문\s*번호|주문|운송장|송장|택배|쿠폰|예약\s*번호|모델|사이즈|상품\s*번호|포인트")
_REGION = (r"(?:(?:서울|부산|대구|인천|광주|대전|울산|세종|제주|경기|강원|충북|충남|전북|전남|경북|경남)"
           r"(?:특별시|광역시|특별자치시|특별자치도|도|시)?|[가-힣]{1,6}(?:도|시|군|구|읍|면))")
_NUM = rf"(?:\d+(?:-\d+)?|[{_SINO}]+)"
_UNIT = (rf"(?:\s*,?\s*[가-힣A-Za-z0-9]*(?:아파트|빌라|오피스텔|타워|맨션|빌딩))?"
         rf"(?:\s*{_NUM}\s*동)?(?:\s*{_NUM}\s*층)?(?:\s*{_NUM}\s*호)?")
_ROAD = (rf"[가-힣A-Za-z0-9]+(?:로|길)\s*{_NUM}(?:\s*번길\s*{_NUM})?"
         r"(?!\s*(?:개|번(?!길)|시|분|월|년|원|명|건|박스|살|%))")
_JIBUN = rf"[가-힣]+(?:동|리|가)\s*{_NUM}\s*번지"
_ADDRESS = re.compile(rf"(?:{_REGION}\s+){{0,4}}(?:{_ROAD}|{_JIBUN}){_UNIT}")
_ADDRESS_WORDS = re.compile(r"주소|배송지|사는\s*곳|살아요|살고|거주|이사")
_REGION_START = re.compile(_REGION)


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    value: str  # digits for numbers, the text itself otherwise

    @property
    def last4(self) -> str:
        return self.value[-4:] if self.kind in _SHOW_LAST4 else ""

    def masked(self) -> str:
        """The form kept at rest: `[카드번호 ****3456]`, `[주민등록번호]`."""
        label = _LABELS[self.kind]
        sex_digit = self.value[6] if len(self.value) == 13 else self.value[:1]
        if self.kind == RRN and sex_digit in ("5", "6", "7", "8"):
            label = "외국인등록번호"
        return f"[{label} ****{self.last4}]" if self.last4 else f"[{label}]"

    def spoken(self) -> str:
        """What the agent may say instead: "계좌번호 끝자리 6789"."""
        label = _LABELS[self.kind]
        return f"{label} 끝자리 {self.last4}" if self.last4 else f"말씀하신 {label}"


# --- validators -----------------------------------------------------------------------------------
def _yymmdd(digits: str) -> bool:
    try:
        date(2000 + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return False
    return True


def is_rrn(digits: str, context: bool = False) -> bool:
    """A resident/foreigner registration number: 13 digits with a valid checksum; in context (a number after
    "주민번호") also one without (numbers issued since October 2020 have none)."""
    if len(digits) != 13:
        return False
    if kr_rrn.is_valid(digits):
        return True
    return context and _yymmdd(digits) and digits[6] in "12345678"


def _issuer_fits(digits: str) -> bool:
    """Card length by issuer: 13 digits are old Visa only, 14 Diners, 15 Amex/JCB, 16–19 the rest."""
    n, first = len(digits), digits[0]
    if n == 13:
        return first == "4"
    if n == 14:
        return digits[:2] in ("30", "36", "38", "39")
    if n == 15:
        return digits[:2] in ("34", "37") or digits[:4] in ("1800", "2131")
    return first in "2345689"


def is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _issuer_fits(digits) and luhn.is_valid(digits)


def phone_digits(digits: str) -> str | None:
    """The national form of a Korean phone number (mobile or landline), else None. 1588-style business
    numbers are not personal and are not returned."""
    if digits.startswith("82") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    elif digits.startswith("10") and len(digits) == 10:
        digits = "0" + digits
    if not digits.startswith("0") or not 9 <= len(digits) <= 11:
        return None
    if digits.startswith("010") and len(digits) != 11:
        return None  # every 010 number has 11 digits; "010 9876 543" + 이예요 is 01098765432 + 예요
    try:
        number = phonenumbers.parse(digits, "KR")
    except phonenumbers.NumberParseException:
        return None
    return digits if phonenumbers.is_valid_number(number) else None


def _account(digits: str, layout: tuple[int, ...], hard: bool, context: bool) -> bool:
    if not 10 <= len(digits) <= 14:
        return False
    return context or (hard and layout in _BANK_LAYOUTS)


def _birth_digits(digits: str, layout: tuple[int, ...], hard: bool, context: bool) -> bool:
    if len(digits) == 6:
        return context and _yymmdd(digits)
    if len(digits) == 8 and digits[:2] in ("19", "20"):
        try:
            born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            return False
        return context or (hard and layout == (4, 2, 2) and born.year <= 2012)
    return False


# --- classification of digit runs -------------------------------------------------------------------
def classify(digits: str, layout: tuple[int, ...], hard: bool, context: str, before: str | None = None) -> str | None:
    """The kind of one digit string, given its group layout, whether the groups were hyphenated (or said
    with 다시/에), and the words around it (`before`: only those before it, where a password word stands)."""
    rrn_ctx = bool(_RRN_WORDS.search(context))
    if is_rrn(digits, rrn_ctx) or (layout == (6, 7) and is_rrn(digits, True)):
        return RRN
    if rrn_ctx and len(digits) == 7 and digits[0] in "12345678":
        return RRN  # the back half alone ("뒷자리 1234567")
    if is_card(digits):
        return CARD
    if _CARD_WORDS.search(context) and 15 <= len(digits) <= 16 and not phone_digits(digits):
        return CARD  # said after "카드번호": never kept, even if misheard
    if len(digits) >= 9 and phone_digits(digits):
        return PHONE  # a valid phone number is one even after "비밀번호는 ****, 연락처는 …"
    if _PIN_WORDS.search(context if before is None else before) and 2 <= len(digits) <= 12:
        return PIN
    if _account(digits, layout, hard, bool(_ACCOUNT_WORDS.search(context))):
        return ACCOUNT
    if _birth_digits(digits, layout, hard, rrn_ctx or bool(_BIRTH_WORDS.search(context))):
        return BIRTH_DATE
    return None


def _readings(pieces: tuple[Piece, ...]) -> list[tuple[str, tuple[int, ...], int]]:
    """(digits, layout, end) for the pieces as read, and with the last piece's other reading."""
    head = "".join(p.digits for p in pieces[:-1])
    last = pieces[-1]
    layout = tuple(len(p.digits) for p in pieces[:-1])
    out = [(head + last.digits, (*layout, len(last.digits)), last.end)]
    if last.alt is not None and last.alt_end is not None:
        out.append((head + last.alt, (*layout, len(last.alt)), last.alt_end))
    return out


MAX_DIGITS = 19


def _run_findings(text: str, run: Run, floor: int) -> list[Finding]:
    found: list[Finding] = []
    pieces = run.pieces
    i = 0
    while i < len(pieces):
        hit = None
        # Nothing personal is longer than 19 digits: longer spans need no look (a hex dump in a log line).
        last, total = i, 0
        while last < len(pieces) and total + len(pieces[last].digits) <= MAX_DIGITS:
            total += len(pieces[last].digits)
            last += 1
        start = pieces[i].start
        before = text[max(floor, start - 30):start]
        others = list(_OTHER_NUMBER_WORDS.finditer(before))
        if others:  # the nearest word decides: "비밀번호 바꾸려는데 주문번호 123456"
            before = before[others[-1].start():]
        for j in range(max(last - 1, i), i - 1, -1):
            sub = pieces[i:j + 1]
            hard = all(p.hard_before for p in sub[1:])
            for digits, layout, end in _readings(sub):
                after = text[end:end + 12]
                kind = classify(digits, layout, hard, before + " " + after, before)
                if kind is not None:
                    hit = (j, Finding(kind, start, end, digits))
                    break
            if hit:
                break
        if hit is None:
            i += 1
            continue
        j, finding = hit
        found.append(finding)
        floor = finding.end
        i = j + 1
    return found


# --- words: dates, e-mail, addresses, written passwords ----------------------------------------------
def _sino(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    digits = {"영": 0, "공": 0, "일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "칠": 7, "팔": 8, "구": 9}
    units = {"십": 10, "백": 100, "천": 1000}
    total, pending, seen_unit = 0, 0, False
    for ch in word:
        if ch in units:
            total += (pending or 1) * units[ch]
            pending, seen_unit = 0, True
        elif ch in digits:
            pending = pending * 10 + digits[ch]
        else:
            return None
    return total + pending if seen_unit or len(word) <= 4 else None


def _word_dates(text: str) -> list[Finding]:
    out = []
    for m in _DATE_WORDS.finditer(text):
        y, mo, d = (_sino(g) for g in m.groups())
        if y is None or mo is None or d is None:
            continue
        context = bool(_BIRTH_WORDS.search(text[max(0, m.start() - 30):m.start()]) or
                       _RRN_WORDS.search(text[max(0, m.start() - 30):m.start()]))
        if y < 100:
            if not (context or y >= 30):
                continue
            y += 1900 if y >= 30 else 2000
        try:
            born = date(y, mo, d)
        except ValueError:
            continue
        if context or 1900 <= born.year <= 2012:
            out.append(Finding(BIRTH_DATE, m.start(), m.end(), born.isoformat()))
    return out


def _addresses(text: str) -> list[Finding]:
    out = []
    for m in _ADDRESS.finditer(text):
        start = m.start()
        region = _REGION_START.match(text, start)
        if region is None and not _ADDRESS_WORDS.search(text[max(0, start - 30):start]) \
                and "번지" not in m.group(0) and "호" not in m.group(0):
            continue  # "택배로 2개" is not an address
        out.append(Finding(ADDRESS, start, m.end(), m.group(0)))
    return out


def _regex_findings(text: str) -> list[Finding]:
    found = [Finding(EMAIL, m.start(), m.end(), m.group(0)) for m in _EMAIL.finditer(text)]
    found += [Finding(PIN, m.start(1), m.end(1), m.group(1)) for m in _PASSWORD_VALUE.finditer(text)]
    found += _word_dates(text)
    found += _addresses(text)
    return found


# What masking already wrote: its digits and labels are never found again ("[계좌번호 ****6789]" before
# "비밀번호" is not a PIN), so masking is idempotent.
_ALREADY_MASKED = re.compile(
    r"\[(?:카드번호|주민등록번호|외국인등록번호|계좌번호|전화번호|비밀번호|이메일|생년월일|주소|키패드 입력)"
    r"(?: \*{4}\d{4})?\]|\[(?:ACCOUNT|PHONE|EMAIL|ADDRESS|BIRTH_DATE|KEYPAD)_\d+\]")


def find_pii(text: str) -> list[Finding]:
    """Every piece of personal data in `text`, in order, without overlaps."""
    if not text:
        return []
    # Same length, so positions hold; a filler that is neither a digit nor a space ends any run.
    text = _ALREADY_MASKED.sub(lambda m: "■" * len(m.group(0)), text)
    found = _regex_findings(text)
    floor = 0
    for run in digit_runs(text):
        for f in _run_findings(text, run, floor):
            found.append(f)
        floor = run.end
    chosen: list[Finding] = []
    # Wider findings first (an address holds its building number), then by position.
    for f in sorted(found, key=lambda f: (-(f.end - f.start), f.start)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    return sorted(chosen, key=lambda f: f.start)


def replace_pii(text: str, replace: Callable[[Finding], str]) -> str:
    findings = find_pii(text)
    if not findings:
        return text
    parts, pos = [], 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(replace(f))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def mask_text(text: str) -> str:
    """`text` with every piece of personal data replaced by its masked form; safe to store and log."""
    return replace_pii(text, Finding.masked)


def contains_secret(text: str) -> bool:
    """A card number, resident number or password/PIN is in `text`."""
    return any(f.kind in SECRET_KINDS for f in find_pii(text))


def mask_keypad(digits: str) -> str:
    """The stored form of a keypad entry: a menu key or two as pressed, a typed number masked."""
    return Finding(KEYPAD, 0, len(digits), digits).masked() if len(digits) >= 3 else digits


def mask_value(value: object) -> object:
    """`mask_text` through strings inside dicts, lists and tuples (event details, JSON fields)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_value(v) for v in value)
    return value
