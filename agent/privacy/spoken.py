"""Digit runs in a transcript, with their positions: written digits and Korean digits as ASR writes them
("공일공 일이삼사 오육칠팔", "영", "하나 둘", mixed "12삼456"), joined across spaces and the separators a
caller says ("다시", "에", "하이픈", "대시", "-"). Pure; the PII detectors classify what this finds.

A trailing "이" is ambiguous ("칠팔구이에요" is 789 + 이에요, or 7892 + 에요), so a piece keeps both readings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGIT_SYLLABLES = {"공": "0", "영": "0", "빵": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5",
                   "육": "6", "륙": "6", "칠": "7", "팔": "8", "구": "9"}
NATIVE_DIGITS = {"하나": "1", "둘": "2", "셋": "3", "넷": "4", "다섯": "5", "여섯": "6", "일곱": "7",
                 "여덟": "8", "아홉": "9"}
_DIGIT_CHARS = frozenset("0123456789") | frozenset(DIGIT_SYLLABLES)
# Spoken between digit groups, like a hyphen in writing.
SEPARATOR_WORDS = frozenset({"다시", "하이픈", "대시", "다쉬", "에", "-", "–", "—"})
# Endings glued onto a number; longest first. A particle closes the number ("…입니다 그리고 3개").
_PARTICLES = sorted({
    "번이요", "번이에요", "번입니다", "번이고요", "번이고", "번", "이에요", "이예요", "예요", "에요", "이요", "입니다",
    "이고요", "이고", "이구요", "구요", "고요", "인데요", "인데", "이며", "요", "은", "는", "을", "를", "으로", "로",
    "까지", "이랑", "랑", "하고", "고", "이", "가", "이야", "야", "이거든요", "거든요", "이라고", "라고", "으로요",
    "로요", "이래요", "래요", "인가요", "이었나", "였나", "이었어요", "였어요", "일걸요", "이었던가", "입니다만",
}, key=len, reverse=True)
_TRAILING_SEPARATORS = ("에", "다시", "하이픈", "대시")
_INNER_SPLIT = re.compile(r"(-|–|—|\.|/|다시|하이픈|대시)")
_STRIP_LEFT = "\"'([{<「『“‘"
_STRIP_RIGHT = "\"')]}>」』”’,.?!…~:;"


@dataclass(frozen=True)
class Piece:
    """One group of digits as said or written; `alt` is the other reading of an ambiguous trailing 이."""

    start: int
    end: int
    digits: str
    alt: str | None = None
    alt_end: int | None = None
    hard_before: bool = False  # a hyphen or a spoken separator came before it (not only a space)


@dataclass(frozen=True)
class Run:
    pieces: tuple[Piece, ...]

    @property
    def start(self) -> int:
        return self.pieces[0].start

    @property
    def end(self) -> int:
        return self.pieces[-1].end


def _read(word: str) -> str | None:
    if word in NATIVE_DIGITS:
        return NATIVE_DIGITS[word]
    if word and all(ch in _DIGIT_CHARS for ch in word):
        return "".join(DIGIT_SYLLABLES.get(ch, ch) for ch in word)
    return None


def _parse_part(part: str, at: int) -> tuple[Piece, str] | None:
    """A piece and the ending glued to it ("" when none), or None when `part` is not a number."""
    digits = _read(part)
    if digits is not None:
        if len(part) > 2 and part[-1] == "이" and part[:-1].isascii():
            # "123456이" as ASR writes it: the 이 is most likely a particle after written digits.
            return Piece(at, at + len(part) - 1, digits[:-1], digits, at + len(part)), "이"
        if len(part) >= 6 and part[-1] == "이":
            return Piece(at, at + len(part), digits, digits[:-1], at + len(part) - 1), ""
        return Piece(at, at + len(part), digits), ""
    for particle in _PARTICLES + list(_TRAILING_SEPARATORS):
        if not part.endswith(particle) or len(part) == len(particle):
            continue
        stem = part[: -len(particle)]
        digits = _read(stem)
        if digits is None:
            continue
        end = at + len(stem)
        rest = particle[1:]
        if particle.startswith("이") and stem[-1] in _DIGIT_CHARS and (not rest or rest in _PARTICLES):
            return Piece(at, end, digits, digits + "2", end + 1), particle
        return Piece(at, end, digits), particle
    return None


def _clean(token: str, at: int) -> tuple[str, int]:
    left = len(token) - len(token.lstrip(_STRIP_LEFT))
    token = token[left:].rstrip(_STRIP_RIGHT)
    return token, at + left


def digit_runs(text: str) -> list[Run]:
    """Every run of digit groups in `text`, in order."""
    runs: list[Run] = []
    current: list[Piece] = []
    hard = False

    def close() -> None:
        nonlocal current, hard
        if current:
            runs.append(Run(tuple(current)))
        current, hard = [], False

    for m in re.finditer(r"[^\s:]+", text):
        token, at = _clean(m.group(0), m.start())
        if not token:
            continue
        if token in SEPARATOR_WORDS:
            hard = bool(current)
            continue
        if token in _PARTICLES:
            # "3456 이에요": an ending on its own closes the number; its 이 may still be a digit.
            if current and token.startswith("이") and current[-1].alt is None:
                last = current[-1]
                current[-1] = Piece(last.start, last.end, last.digits, last.digits + "2", at + 1, last.hard_before)
            close()
            continue
        pieces: list[Piece] = []
        ending = ""
        pos = 0
        ok = True
        parts = _INNER_SPLIT.split(token)
        for i, part in enumerate(parts):
            if i % 2:  # a separator inside the token
                pos += len(part)
                continue
            if not part:
                continue
            if ending:  # an ending in the middle of a token ("12이고34"): not a number
                ok = False
                break
            parsed = _parse_part(part, at + pos)
            if parsed is None:
                ok = False
                break
            piece, ending = parsed
            pieces.append(piece)
            pos += len(part)
        if not ok or not pieces:
            close()
            continue
        for i, piece in enumerate(pieces):
            joined = hard if i == 0 else True
            current.append(Piece(piece.start, piece.end, piece.digits, piece.alt, piece.alt_end,
                                 hard_before=joined and bool(current)))
        hard = len(parts) > 1 and parts[-1] == ""  # "공일공다시" ends on a separator
        if ending in _TRAILING_SEPARATORS:
            hard = True
        elif ending:
            close()
    close()
    return runs
