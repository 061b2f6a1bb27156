"""Percentiles for benchmark tables: nearest-rank, so every reported value is one that was measured.

Nearest rank: the p-th percentile of n sorted values is the value at 1-based rank ceil(p/100 · n) (rank 1
for p = 0). No interpolation, so p50 of [1, 2, 3, 4] is 2, and p99 of fewer than 100 values is the maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

QUANTILES = (50.0, 95.0, 99.0)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of `values` (any order); None for no values."""
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def clean(values: Iterable[float | None]) -> list[float]:
    """Drops missing values (None, NaN): a part that was not measured is not a zero."""
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def summary(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """n, p50, p95, p99, max and mean; every statistic is None when nothing was measured."""
    data = clean(values)
    out: dict[str, float | int | None] = {"n": len(data)}
    for q in QUANTILES:
        out[f"p{q:g}"] = percentile(data, q)
    out["max"] = max(data) if data else None
    out["mean"] = sum(data) / len(data) if data else None
    return out
