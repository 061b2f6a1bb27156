"""The per-call vault: personal data the caller said stays in this process's memory for the call; the
model, the history and every record see placeholders (`[ACCOUNT_1]`), and a tool gets the real value back
through `resolve`. Secrets (card, resident number, PIN) are never kept: they are masked at once.
"""

from __future__ import annotations

import re
from datetime import date

from agent.privacy import pii

TAGS = {pii.ACCOUNT: "ACCOUNT", pii.PHONE: "PHONE", pii.EMAIL: "EMAIL", pii.ADDRESS: "ADDRESS",
        pii.BIRTH_DATE: "BIRTH_DATE", pii.KEYPAD: "KEYPAD"}
PLACEHOLDER = re.compile(r"\[(ACCOUNT|PHONE|EMAIL|ADDRESS|BIRTH_DATE|KEYPAD)_(\d+)\]")
_EMAIL_WORDS = (("골뱅이", "@"), ("앳", "@"), ("닷컴", ".com"), ("닷넷", ".net"), ("닷", "."), ("점", "."),
                ("네이버", "naver"), ("지메일", "gmail"), ("한메일", "hanmail"), ("다음", "daum"),
                ("카카오", "kakao"), ("네이트", "nate"), ("야후", "yahoo"), ("핫메일", "hotmail"), ("컴", "com"),
                ("넷", "net"))


def _email(text: str) -> str:
    out = text
    for word, repl in _EMAIL_WORDS:
        out = out.replace(word, repl)
    return re.sub(r"\s+", "", out)


def _iso_birth(value: str, today: date) -> str:
    """"850312" / "19850312" / "1985-03-12" → "1985-03-12" (what verify_identity takes)."""
    if len(value) == 6 and value.isdigit():
        century = today.year // 100 * 100
        year = century + int(value[:2])
        if year > today.year:
            year -= 100
        return f"{year:04d}-{value[2:4]}-{value[4:6]}"
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


class Vault:
    """One call's personal data; `clear()` (or dropping the object) forgets it."""

    def __init__(self, today: date | None = None):
        self._today = today or date.today()
        self._values: dict[str, pii.Finding] = {}
        self._real: dict[str, str] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._values)

    def _real_value(self, f: pii.Finding) -> str:
        if f.kind == pii.EMAIL:
            return _email(f.value)
        if f.kind == pii.BIRTH_DATE:
            return _iso_birth(f.value, self._today)
        return f.value

    def _placeholder(self, f: pii.Finding) -> str:
        tag = TAGS.get(f.kind)
        if tag is None:
            return f.masked()  # a secret: forgotten at once, not even kept here
        real = self._real_value(f)
        key = (f.kind, real)
        name = self._names.get(key)
        if name is None:
            self._counts[tag] = self._counts.get(tag, 0) + 1
            name = f"[{tag}_{self._counts[tag]}]"
            self._names[key] = name
            self._values[name] = f
            self._real[name] = real
        return name

    def hold_keypad(self, digits: str) -> str:
        """A number typed on the keypad (an order number, or a PIN): kept here, `[KEYPAD_1]` elsewhere."""
        return self._placeholder(pii.Finding(pii.KEYPAD, 0, len(digits), digits))

    def protect(self, text: str) -> str:
        """`text` with kept data as placeholders and secrets masked: what the model and history see."""
        return pii.replace_pii(text, self._placeholder)

    def reveal(self, text: str) -> str:
        """Placeholders back to the real values (for tools and checks inside this process only)."""
        return PLACEHOLDER.sub(lambda m: self._real.get(m.group(0), m.group(0)), text)

    def speakable(self, text: str) -> str:
        """Placeholders as the agent may say them: "계좌번호 끝자리 6789", never the whole number."""
        return PLACEHOLDER.sub(lambda m: self._values[m.group(0)].spoken() if m.group(0) in self._values
                               else "", text)

    def masked(self, text: str) -> str:
        """Placeholders and any other personal data in their masked forms: what may be stored or logged."""
        out = PLACEHOLDER.sub(lambda m: self._values[m.group(0)].masked() if m.group(0) in self._values
                              else "", text)
        return pii.mask_text(out)

    def resolve(self, value: object) -> object:
        """`reveal` through the strings of tool arguments (dicts, lists)."""
        if isinstance(value, str):
            return self.reveal(value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def clear(self) -> None:
        self._values.clear()
        self._real.clear()
        self._names.clear()
