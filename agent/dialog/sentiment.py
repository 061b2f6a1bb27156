"""A small lexicon sentiment scorer for Korean (and a little English) caller turns.

Scale: -1.0 (furious) … 0.0 (neutral) … +1.0 (delighted). Each matched lexicon term adds its weight
(strong negative -0.8, negative -0.5, mild -0.2, positive +0.4); an intensifier (너무, 진짜, 정말 …) just
before a term multiplies that term by 1.5; "!!"/"??" runs add -0.1. The sum is clipped to [-1, 1].
A term negated right after it ("불만 없어요", "화가 안 나요", "최악은 아니에요") or a positive term with 안/못
before it ("안 좋아요") counts at half its weight with the sign turned.

One turn never transfers a caller: `trend` is an exponentially weighted mean over the turns, and
`sustained_negative` asks for that mean at or under the threshold with the last turns all negative.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
_NEGATED_AFTER = re.compile(r"^.{0,4}?(않|없|아니|안\s?(나|해|돼|되|들))")
_NEGATED_BEFORE = re.compile(r"(안|못)\s?$")
NEGATION_FACTOR = -0.5
TREND_ALPHA = 0.6  # weight of the newest turn in the running mean
SUSTAINED_TURNS = 2  # this many negative turns in a row, at least, before a transfer


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
                after = t[start + len(term): start + len(term) + 8]
                if _NEGATED_AFTER.match(after) or (weight > 0 and _NEGATED_BEFORE.search(t[:start])):
                    factor = NEGATION_FACTOR
                total += weight * factor
            start = t.find(term, start + len(term))
    total -= 0.1 * len(re.findall(r"[!?]{2,}", t))
    return max(-1.0, min(1.0, total))


def trend(scores: Sequence[float], alpha: float = TREND_ALPHA) -> float:
    """Exponentially weighted mean of per-turn scores, oldest first; 0.0 (neutral) before any turn."""
    mean = 0.0
    for value in scores:
        mean = alpha * value + (1 - alpha) * mean
    return mean


def sustained_negative(scores: Sequence[float], threshold: float, *, turns: int = SUSTAINED_TURNS,
                       alpha: float = TREND_ALPHA) -> bool:
    """True when the caller has been negative for the last `turns` turns and the trend reached `threshold`."""
    recent = scores[-turns:]
    return len(recent) == turns and all(v < 0 for v in recent) and trend(scores, alpha) <= threshold
