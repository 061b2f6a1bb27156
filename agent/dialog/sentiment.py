"""A small lexicon sentiment scorer for Korean (and a little English) caller turns.

Scale: -1.0 (furious) … 0.0 (neutral) … +1.0 (delighted). Each matched lexicon term adds its weight
(strong negative -0.8, negative -0.5, mild -0.2, positive +0.4); an intensifier (너무, 진짜, 정말 …) just
before a term multiplies that term by 1.5; "!!"/"??" runs add -0.1. The sum is clipped to [-1, 1].
So one strong term with an intensifier (-1.2 → -1.0) or two negatives (-1.0) cross the default -0.7.
"""

from __future__ import annotations

import re

STRONG_NEGATIVE = -0.8
NEGATIVE = -0.5
MILD_NEGATIVE = -0.2
POSITIVE = 0.4
INTENSIFIER_FACTOR = 1.5

# Stems, matched as substrings of the normalised text (Korean conjugates the ending, not the stem).
LEXICON: dict[str, float] = {
    # strong: insults, rage, "worst"
    "최악": STRONG_NEGATIVE, "미치겠": STRONG_NEGATIVE, "열받": STRONG_NEGATIVE, "장난하": STRONG_NEGATIVE,
    "장난치": STRONG_NEGATIVE, "어이없": STRONG_NEGATIVE, "빡치": STRONG_NEGATIVE, "환장": STRONG_NEGATIVE,
    "씨발": STRONG_NEGATIVE, "시발": STRONG_NEGATIVE, "젠장": STRONG_NEGATIVE, "개판": STRONG_NEGATIVE,
    "사기꾼": STRONG_NEGATIVE, "고소": STRONG_NEGATIVE, "terrible": STRONG_NEGATIVE, "worst": STRONG_NEGATIVE,
    "furious": STRONG_NEGATIVE, "ridiculous": STRONG_NEGATIVE,
    # negative: anger, disappointment, frustration
    "짜증": NEGATIVE, "화나": NEGATIVE, "화가": NEGATIVE, "실망": NEGATIVE, "엉망": NEGATIVE,
    "불친절": NEGATIVE, "답답": NEGATIVE, "황당": NEGATIVE, "속상": NEGATIVE, "불만": NEGATIVE,
    "형편없": NEGATIVE, "말이 안": NEGATIVE, "말이 됩니까": NEGATIVE, "몇 번을": NEGATIVE,
    "angry": NEGATIVE, "annoyed": NEGATIVE, "disappointed": NEGATIVE, "upset": NEGATIVE,
    # mild: inconvenience, waiting
    "불편": MILD_NEGATIVE, "아직도": MILD_NEGATIVE, "왜 이렇게": MILD_NEGATIVE, "늦어": MILD_NEGATIVE,
    "안 와": MILD_NEGATIVE, "문제": MILD_NEGATIVE, "걱정": MILD_NEGATIVE, "late": MILD_NEGATIVE,
    # positive
    "감사": POSITIVE, "고맙": POSITIVE, "좋아요": POSITIVE, "좋네요": POSITIVE, "친절": POSITIVE,
    "만족": POSITIVE, "다행": POSITIVE, "thank": POSITIVE, "great": POSITIVE,
}
INTENSIFIERS = ("너무", "진짜", "정말", "완전", "아주", "엄청", "겁나", "really", "so ")
_INTENSIFIER_WINDOW = 6  # characters before a term in which an intensifier still counts


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def score(text: str) -> float:
    """Sentiment of one caller turn on the -1 … +1 scale described in the module docstring."""
    t = _normalise(text)
    total = 0.0
    for term, weight in LEXICON.items():
        start = t.find(term)
        while start >= 0:
            # "불친절" must not also count as "친절", nor "불만족" as "만족".
            if not (weight > 0 and start > 0 and t[start - 1] == "불"):
                before = t[max(0, start - _INTENSIFIER_WINDOW): start]
                factor = INTENSIFIER_FACTOR if any(i in before for i in INTENSIFIERS) else 1.0
                total += weight * factor
            start = t.find(term, start + len(term))
    total -= 0.1 * len(re.findall(r"[!?]{2,}", t))
    return max(-1.0, min(1.0, total))
