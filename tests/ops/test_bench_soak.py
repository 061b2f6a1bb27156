"""The soak's verdicts: RSS slope over the last half (the allocator's swings averaged out) and object growth."""

from __future__ import annotations

import pytest

from agent.ops.bench import soak


def test_slope_is_per_minute_and_least_squares():
    assert soak.slope_per_min([(0, 100.0), (60, 101.0), (120, 102.0)]) == pytest.approx(1.0)
    # A swing up and back does not make a slope; one point or one time makes none at all.
    assert soak.slope_per_min([(0, 100.0), (30, 120.0), (60, 100.0)]) == pytest.approx(0.0)
    assert soak.slope_per_min([(0, 1.0)]) is None
    assert soak.slope_per_min([(5, 1.0), (5, 2.0)]) is None


def test_memory_flat_is_judged_on_the_last_half_only():
    # Start-up growth (pool threads, arenas) in the first half, then flat with swings: flat.
    warm = [(t, 500.0 + min(t, 600) * 0.5) for t in range(0, 1200, 30)]
    swings = [(t, v + (15 if (t // 30) % 2 else -15)) for t, v in warm]
    verdict = soak.memory_verdict(swings, duration_s=1200, window_min=10)
    assert verdict["flat"] and abs(verdict["slope_last_half_mib_per_min"]) < 1
    assert verdict["max_mib"] == max(v for _, v in swings)
    # 2 MiB a minute over the whole run: not flat, and the slope says how much.
    creeping = [(t, 500.0 + t / 30) for t in range(0, 1200, 30)]
    verdict = soak.memory_verdict(creeping, duration_s=1200, window_min=10)
    assert not verdict["flat"] and verdict["slope_last_half_mib_per_min"] == pytest.approx(2.0)
    assert verdict["slope_last_10_min_mib_per_min"] == pytest.approx(2.0)


def _census(counts: list[int], every_s: float = 30.0) -> list[dict]:
    return [{"t": 1000.0 + i * every_s, "objects": n, "threads": 5,
             "top_types": {"dict": n // 2, "CallSession": i}} for i, n in enumerate(counts)]


def test_objects_that_grow_call_by_call_are_not_flat():
    steady = soak.objects_verdict(_census([50_000 + (i % 3) * 100 for i in range(40)]), 1000.0, 1200)
    assert steady["flat"]
    growing = soak.objects_verdict(_census([50_000 + i * 200 for i in range(40)]), 1000.0, 1200)
    assert not growing["flat"] and growing["fitted_growth_last_half"] == pytest.approx(3800, rel=0.02)
    assert growing["top_types_grown"]["CallSession"] == 39  # the type that grew is named
