"""Keypad input: digits other than the human digit are collected into one dialog turn (pure; time passed in).

`#` ends the entry at once; otherwise it ends after an inter-digit gap. `*` clears what was typed so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DIGITS = 32  # no order, account or card number is longer; a flood cannot grow the buffer


@dataclass
class Keypad:
    gap_s: float = 2.5
    digits: list[str] = field(default_factory=list)
    last_at: float = 0.0

    @property
    def typing(self) -> bool:
        return bool(self.digits)

    def press(self, digit: str, now: float) -> str | None:
        """Returns the finished entry when this key ends it."""
        self.last_at = now
        if digit == "#":
            return self._take()
        if digit == "*":
            self.digits.clear()
            return None
        if digit.isdigit() and len(self.digits) < MAX_DIGITS:
            self.digits.append(digit)
        return None

    def tick(self, now: float) -> str | None:
        if self.digits and now - self.last_at >= self.gap_s:
            return self._take()
        return None

    def _take(self) -> str | None:
        text, self.digits = "".join(self.digits), []
        return text or None
