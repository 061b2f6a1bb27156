"""FairPool: FIFO across calls, round-robin within a call, bounded waits, never more users than instances."""

from __future__ import annotations

import threading
import time

import pytest

from agent.engines.tts.pool import FairPool, PoolTimeout


def test_waiting_calls_take_turns_before_a_call_gets_its_second_slot() -> None:
    pool: FairPool[str] = FairPool(["gpu0"])
    order: list[str] = []
    held = pool.acquire("busy", timeout=1)
    threads = []
    # Call A queues three sentences, then B and C one each; arrival order A, A, A, B, C.
    for call in ["A", "A", "A", "B", "C"]:
        def take(call: str = call) -> None:
            with pool.lease(call, timeout=5):
                order.append(call)
                time.sleep(0.01)
        threads.append(threading.Thread(target=take))
        threads[-1].start()
        time.sleep(0.02)  # fixes the arrival order
    assert pool.waiting == 5
    pool.release(held)
    for t in threads:
        t.join(timeout=5)
    assert order == ["A", "B", "C", "A", "A"]


def test_never_more_holders_than_instances() -> None:
    pool: FairPool[int] = FairPool([0, 1])
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(call: str) -> None:
        for _ in range(3):
            with pool.lease(call, timeout=5) as res:
                assert res in (0, 1)
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.005)
                with lock:
                    active[0] -= 1

    threads = [threading.Thread(target=work, args=(f"call-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert peak[0] == 2
    assert pool.busy == 0 and pool.waiting == 0


def test_timeout_is_retryable_and_leaves_no_ghost_waiter() -> None:
    pool: FairPool[str] = FairPool(["gpu0"])
    held = pool.acquire("a", timeout=1)
    started = time.monotonic()
    with pytest.raises(PoolTimeout) as info:
        pool.acquire("b", timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 1.0
    assert info.value.retryable
    assert pool.waiting == 0
    pool.release(held)
    assert pool.acquire("c", timeout=0.1) == "gpu0"  # the timed-out waiter did not swallow the release


def test_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError):
        FairPool([])
