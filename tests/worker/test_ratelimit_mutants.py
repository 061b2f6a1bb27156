"""Rate-limited log lines: a token bucket per message format, with time passed in; what a flood writes, what it
suppresses and counts, and the line that says how many were suppressed."""

from __future__ import annotations

import logging

import pytest

from agent.worker.ratelimit import RateLimitedLog, TokenBucket


@pytest.mark.parametrize("per_s, burst", [(0.0, 1.0), (-1.0, 2.0), (1.0, 0.99), (1.0, 0.0)])
def test_a_bucket_that_could_never_let_a_line_through_is_refused(per_s, burst):
    with pytest.raises(ValueError, match="^per_s must be > 0 and burst >= 1$"):
        TokenBucket(per_s, burst)


def test_the_smallest_bucket_lets_one_line_through_then_one_per_period():
    bucket = TokenBucket(0.5, 1.0)
    assert [bucket.take(t) for t in (10.0, 10.0, 11.0, 12.0, 12.0)] == [True, False, False, True, False]


def test_a_bucket_holds_one_token_unless_told_otherwise():
    bucket = TokenBucket(per_s=1.0)
    assert [bucket.take(0.0), bucket.take(0.0), bucket.take(5.0), bucket.take(5.0)] == [True, False, True, False]


def test_a_full_bucket_lets_a_burst_through_at_once():
    bucket = TokenBucket(per_s=1.0, burst=3.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_exactly_one_token_refilled_is_enough():
    bucket = TokenBucket(per_s=4.0, burst=1.0)
    assert bucket.take(0.0) and not bucket.take(0.0)
    assert not bucket.take(0.125)  # half a token
    assert bucket.take(0.25)  # 0.5 + 0.125 × 4 = exactly one


def test_a_long_quiet_spell_refills_only_up_to_the_burst():
    bucket = TokenBucket(per_s=10.0, burst=2.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_time_is_counted_from_the_last_take_not_the_first():
    bucket = TokenBucket(per_s=1.0, burst=1.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.5)
    assert bucket.take(1.0)  # 0.5 s + 0.5 s since the refused take
    assert not bucket.take(1.5)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _limited(per_s: float = 1.0, burst: float = 2.0) -> tuple[RateLimitedLog, Clock]:
    clock = Clock()
    return RateLimitedLog(logging.getLogger("ratelimit-test"), per_s=per_s, burst=burst, clock=clock), clock


def test_a_flood_writes_the_burst_counts_the_rest_and_the_next_line_says_how_many(caplog):
    limited, clock = _limited(per_s=1.0, burst=2.0)
    with caplog.at_level(logging.DEBUG, logger="ratelimit-test"):
        written = [limited.warning("peer %s refused", i) for i in range(5)]
        clock.now = 1.0
        assert limited.warning("peer %s refused", "x")
    assert written == [True, True, False, False, False]
    assert limited.suppressed_total == 3
    assert [r.getMessage() for r in caplog.records] == [
        "peer 0 refused", "peer 1 refused", "peer x refused (3 similar lines suppressed)"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_the_suppressed_count_is_reported_once(caplog):
    limited, clock = _limited(per_s=1.0, burst=1.0)
    with caplog.at_level(logging.DEBUG, logger="ratelimit-test"):
        limited.info("a")
        limited.info("a")
        clock.now = 1.0
        limited.info("a")
        clock.now = 2.0
        limited.info("a")
    assert [r.getMessage() for r in caplog.records] == ["a", "a (1 similar lines suppressed)", "a"]
    assert limited.suppressed_total == 1


def test_each_format_has_its_own_bucket_and_count(caplog):
    limited, clock = _limited(per_s=1.0, burst=1.0)
    with caplog.at_level(logging.DEBUG, logger="ratelimit-test"):
        assert limited.error("disk %s", 1) and not limited.error("disk %s", 2) and not limited.error("disk %s", 3)
        assert limited.error("net %s", 1)  # another format is not held back by the first one's flood
        assert not limited.error("net %s", 2)
        clock.now = 5.0
        limited.error("net %s", 3)
        limited.error("disk %s", 4)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "disk 1"), (logging.ERROR, "net 1"),
        (logging.ERROR, "net 3 (1 similar lines suppressed)"), (logging.ERROR, "disk 4 (2 similar lines suppressed)")]
    assert limited.suppressed_total == 3


def test_levels_are_kept(caplog):
    limited, _ = _limited()
    with caplog.at_level(logging.DEBUG, logger="ratelimit-test"):
        limited.info("i %s", 1)
        limited.warning("w")
        limited.error("e")
        limited.log(logging.CRITICAL, "c")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "i 1"), (logging.WARNING, "w"), (logging.ERROR, "e"), (logging.CRITICAL, "c")]


def test_past_the_key_cap_the_buckets_start_afresh():
    # A caller passing data as the format must not grow the table forever: at the cap the buckets are cleared.
    limited, _ = _limited(per_s=1.0, burst=1.0)
    assert limited.warning("held")
    assert not limited.warning("held")
    for i in range(RateLimitedLog.MAX_KEYS - 1):  # the table is now exactly full
        limited.warning(f"other {i}")
    assert not limited.warning("held")  # still the same bucket
    assert limited.warning("one more")  # a new key over a full table clears it
    assert limited.warning("held")  # a fresh bucket


def test_by_default_a_flood_writes_five_lines_then_one_a_second(caplog):
    limited = RateLimitedLog(logging.getLogger("ratelimit-default"))
    with caplog.at_level(logging.DEBUG, logger="ratelimit-default"):
        written = sum(limited.warning("flood") for _ in range(50))
    assert written == 5 and limited.suppressed_total == 45
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("ratelimit-default"), clock=clock)
    assert sum(limited.warning("flood") for _ in range(50)) == 5
    clock.now = 1.0
    assert [limited.warning("flood") for _ in range(2)] == [True, False]  # one line a second after the burst
