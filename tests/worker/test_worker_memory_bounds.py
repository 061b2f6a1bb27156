"""What the worker keeps across calls is bounded: a long run (a 30-minute soak) cannot grow it call by call."""

from __future__ import annotations

import logging

import numpy as np

from agent.engines.asr.base import AsrContext
from agent.engines.asr.fake import CALLS_KEPT, FakeAsr
from agent.worker.ratelimit import RateLimitedLog


def test_fake_engine_keeps_only_its_last_requests():
    engine = FakeAsr(text="네")
    pcm = np.zeros(160, dtype=np.int16)
    for i in range(CALLS_KEPT + 50):
        engine.transcribe(pcm, 16000, AsrContext(call_id=f"c{i}"))
    kept = engine.calls
    assert len(kept) == CALLS_KEPT
    # The newest are kept, in order: tests that read the last request still see it.
    assert [c.context.call_id for c in kept[-2:]] == [f"c{CALLS_KEPT + 48}", f"c{CALLS_KEPT + 49}"]
    assert kept[0].context.call_id == "c50"


def test_log_rate_limit_tables_stay_bounded_when_formats_carry_data(caplog):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("bounds"), per_s=1.0, burst=1, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="bounds"):
        for i in range(RateLimitedLog.MAX_KEYS * 4):
            fmt = f"call c{i}: failed"  # a caller that put data into the format: one key per call
            limited.warning(fmt)
            limited.warning(fmt)  # over its rate: a suppressed count is kept for it
            assert limited.tracked <= RateLimitedLog.MAX_KEYS
    assert limited.suppressed_total == RateLimitedLog.MAX_KEYS * 4


def test_a_format_still_limited_after_the_tables_were_cleared(caplog):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("bounds2"), per_s=1.0, burst=1, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="bounds2"):
        assert limited.warning("steady line") is True
        assert limited.warning("steady line") is False
        for i in range(RateLimitedLog.MAX_KEYS):
            limited.warning(f"noise {i}")
        assert limited.warning("steady line") is True   # tables were reset: a fresh bucket
        assert limited.warning("steady line") is False  # and it limits again
