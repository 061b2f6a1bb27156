"""Which DTMF digits may be stored: none during a secure entry (the agent has just asked for a card number,
PIN, resident or account number, until the caller speaks again or presses #), and none in a run of
`RUN_LENGTH` digits or more, which is how a number is typed. A lone menu key (0 for a human) is kept.
Pure: the call record feeds it and asks what to write.
"""

from __future__ import annotations

import re

RUN_LENGTH = 3
_ASKED = re.compile(
    r"(카드\s*번호|비밀\s*번호|비번|주민\s*(?:등록)?\s*번호|외국인\s*등록\s*번호|계좌\s*번호|생년\s*월일|핀\s*번호|"
    r"인증\s*번호|보안\s*카드|cvc|cvv|pin\b|password|card number|account number)"
    r".{0,24}?(입력|눌러|누르|말씀해|불러|알려|enter|press|tell|say)",
    re.I,
)
_NEGATED = re.compile(r"[^.?!]{0,6}(?:하지|않|마시|마세요|마십|말아|없)")


def asks_for_secret_entry(text: str) -> bool:
    """The agent's sentence asks the caller to key in or say a secret ("카드 번호를 입력해 주세요"); a warning
    ("비밀번호는 말씀하지 마세요") is not a request."""
    return any(not _NEGATED.match(text, m.end()) for m in _ASKED.finditer(text))


class SecureEntry:
    """Held digits and the secure flag for one call."""

    def __init__(self) -> None:
        self.secure = False
        self.in_run = False
        self.held: list[tuple[int, str, str]] = []  # (seq, at, digit) not yet written

    def agent_said(self, text: str) -> None:
        if asks_for_secret_entry(text):
            self.secure = True

    def caller_spoke(self) -> None:
        self.secure = False

    def digit(self, seq: int, at: str, digit: str) -> list[tuple[int, str, str | None]]:
        """What to write now for this key press: (seq, at, digit) with digit None when masked."""
        if self.secure or self.in_run:
            if digit == "#":
                self.secure = False
            return [(seq, at, None)]
        self.held.append((seq, at, digit))
        if len(self.held) >= RUN_LENGTH:
            self.in_run = True
            out = [(s, a, None) for s, a, _ in self.held]
            self.held = []
            return out
        return []

    def release(self) -> list[tuple[int, str, str | None]]:
        """Something other than a key press happened: the held keys were menu keys, written as pressed."""
        out: list[tuple[int, str, str | None]] = list(self.held)
        self.held = []
        self.in_run = False
        return out
