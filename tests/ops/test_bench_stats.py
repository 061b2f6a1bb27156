"""Nearest-rank percentiles for the benchmark tables: known inputs, empty input, a single value."""

from __future__ import annotations

import math

import pytest

from agent.ops.bench.stats import clean, percentile, summary


def test_nearest_rank_on_known_inputs():
    # The textbook example for nearest rank: 15, 20, 35, 40, 50.
    data = [40, 15, 50, 35, 20]  # order does not matter
    assert percentile(data, 5) == 15
    assert percentile(data, 30) == 20
    assert percentile(data, 40) == 20
    assert percentile(data, 50) == 35
    assert percentile(data, 100) == 50


def test_no_interpolation_every_value_was_measured():
    data = [1, 2, 3, 4]
    assert percentile(data, 50) == 2      # rank ceil(0.5 · 4) = 2, not 2.5
    assert percentile(data, 95) == 4
    assert percentile(data, 0) == 1       # rank 1 for p = 0
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 51)), 99) == 50   # fewer than 100 values: p99 is the maximum


def test_empty_input_gives_none():
    assert percentile([], 50) is None
    s = summary([])
    assert s["n"] == 0
    assert all(s[k] is None for k in ("p50", "p95", "p99", "max", "mean"))


def test_single_value_is_every_percentile():
    s = summary([7.5])
    assert s == {"n": 1, "p50": 7.5, "p95": 7.5, "p99": 7.5, "max": 7.5, "mean": 7.5}


def test_missing_values_are_not_zeros():
    assert clean([1.0, None, math.nan, 3]) == [1.0, 3.0]
    s = summary([None, 10.0, 20.0, None])
    assert s["n"] == 2 and s["p50"] == 10.0 and s["max"] == 20.0 and s["mean"] == 15.0


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_outside_0_100_is_an_error(p):
    with pytest.raises(ValueError):
        percentile([1, 2], p)
