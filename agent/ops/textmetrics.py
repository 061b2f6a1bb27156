"""Transcript accuracy metrics: character and word error counts over normalised text.

Korean references often carry non-standard, morpheme-like spacing, so CER is scored space-insensitive.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def _is_dropped(ch: str) -> bool:
    # Punctuation (P*) and symbols (S*) carry no spoken content; brackets from engine lexicons included.
    return unicodedata.category(ch)[0] in ("P", "S")


def normalise_words(text: str) -> list[str]:
    """NFKC, lower case, punctuation and symbols removed, split on whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    cleaned = "".join(" " if _is_dropped(ch) else ch for ch in text)
    return cleaned.split()


def normalise_chars(text: str) -> str:
    """`normalise_words` joined with no whitespace at all: the unit that CER compares."""
    return "".join(normalise_words(text))


def levenshtein(ref: Sequence[object], hyp: Sequence[object]) -> int:
    """Minimum substitutions + insertions + deletions turning `hyp` into `ref`."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref  # keep the rolling row on the shorter side
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def cer(ref: str, hyp: str) -> tuple[int, int]:
    """(character edits, reference characters) after `normalise_chars`; sum both over a set, then divide."""
    r = normalise_chars(ref)
    return levenshtein(r, normalise_chars(hyp)), len(r)


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) after `normalise_words`."""
    r = normalise_words(ref)
    return levenshtein(r, normalise_words(hyp)), len(r)


def rate(pairs: Sequence[tuple[int, int]]) -> float:
    """Corpus-level error rate: total edits / total reference units (0.0 for an empty reference set)."""
    edits = sum(e for e, _ in pairs)
    total = sum(n for _, n in pairs)
    return edits / total if total else 0.0
