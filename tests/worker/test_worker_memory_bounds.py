"""What the worker keeps across calls is bounded: a long run (a 30-minute soak) cannot grow it call by call."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

import numpy as np
from websockets.asyncio.client import connect

from agent.config import parse_config
from agent.engines.asr.base import AsrContext
from agent.engines.asr.fake import CALLS_KEPT, FakeAsr
from agent.worker.ratelimit import RateLimitedLog
from agent.worker.server import HeapTrim, WorkerThread


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


def test_heap_trim_runs_at_most_once_a_period():
    trims: list[float] = []
    heap = HeapTrim(every_s=30.0, trim=lambda: trims.append(1.0))
    assert heap.due(100.0)            # the first call's end trims
    heap.run()
    assert not heap.due(129.9)        # calls ending within the period do not
    assert heap.due(130.0)
    heap.run()
    assert (heap.trims, len(trims)) == (2, 2)


def test_heap_trim_is_never_due_without_malloc_trim():
    heap = HeapTrim(every_s=0.0, trim=None)
    heap._trim = None  # an allocator without malloc_trim (not glibc)
    assert not heap.due(0.0) and not heap.due(1e9)


def test_a_call_ending_trims_the_heap():
    cfg = parse_config({"worker": {"asr": {"engine": "fake", "engines": {"fake": {"text": "네"}}}}})
    cfg = dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, listen=("127.0.0.1", 0)))
    with WorkerThread(cfg) as worker:
        async def one_call() -> None:
            async with connect(f"ws://127.0.0.1:{worker.port}/c1", subprotocols=["audio.drachtio.org"]) as ws:
                await ws.send(json.dumps({"call_id": "c1", "rate": 16000}))
                await ws.send(bytes(640))

        asyncio.run(one_call())
        deadline = time.monotonic() + 30  # a generous bound, not a timing assertion
        while worker.stats()["heap_trims"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.stats()["heap_trims"] == 1
