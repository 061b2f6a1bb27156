"""Rate limits for log lines (and anything else that a flood would repeat): a token bucket per key.

A misbehaving peer (a frame flood, an idle-connection storm, a database down for a minute) must not turn the
log into the outage: each key logs at most `per_s` lines a second on average (bursts up to `burst`), and the
next line that gets through says how many were suppressed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Pure: the caller passes the time, so tests need no clock."""

    def __init__(self, per_s: float, burst: float = 1.0):
        if per_s <= 0 or burst < 1:
            raise ValueError("per_s must be > 0 and burst >= 1")
        self.per_s = per_s
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def take(self, now: float) -> bool:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class RateLimitedLog:
    """A logger wrapper: one bucket per message format, suppressed lines counted and reported."""

    MAX_KEYS = 256  # formats are code constants; the cap only guards against a caller passing data as format

    def __init__(self, logger: logging.Logger, per_s: float = 1.0, burst: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._logger = logger
        self._per_s = per_s
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.suppressed_total = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Logs unless this format is over its rate; True when the line was written."""
        with self._lock:
            bucket = self._buckets.get(msg)
            if bucket is None:
                if len(self._buckets) >= self.MAX_KEYS:
                    self._buckets.clear()
                    self._suppressed.clear()  # counts of formats no longer tracked: keep both tables bounded
                bucket = self._buckets[msg] = TokenBucket(self._per_s, self._burst)
            if not bucket.take(self._clock()):
                self._suppressed[msg] = self._suppressed.get(msg, 0) + 1
                self.suppressed_total += 1
                return False
            dropped = self._suppressed.pop(msg, 0)
        if dropped:
            self._logger.log(level, msg + " (%d similar lines suppressed)", *args, dropped)
        else:
            self._logger.log(level, msg, *args)
        return True

    @property
    def tracked(self) -> int:
        """Formats with state held (buckets and suppressed counts): at most MAX_KEYS each."""
        with self._lock:
            return max(len(self._buckets), len(self._suppressed))

    def warning(self, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, msg, *args)

    def info(self, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, msg, *args)
