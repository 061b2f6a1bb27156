"""A fair pool of single-stream TTS model instances: FIFO across calls, round-robin within them.

VibeVoice-Realtime runs one stream per model instance (batch size 1 is asserted), so each GPU holds N
instances. A call that queues many sentences gets one instance at a time: after each sentence the next
waiting call goes first, so one long reply cannot starve the other calls' first words.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agent.engines.errors import EngineError

R = TypeVar("R")


class PoolTimeout(EngineError):
    """No instance became free in time; retryable, since the pool is only momentarily full."""

    def __init__(self, pool: str, waited_s: float):
        super().__init__(pool, f"no free TTS instance within {waited_s:.1f} s", retryable=True)


@dataclass(eq=False)
class _Waiter(Generic[R]):
    call_id: str
    ready: threading.Event = field(default_factory=threading.Event)
    resource: R | None = None


class FairPool(Generic[R]):
    """Thread-safe. `lease(call_id, timeout)` is the normal entry; `acquire`/`release` for the rest."""

    def __init__(self, resources: Sequence[R], *, name: str = "tts-pool"):
        if not resources:
            raise ValueError("a pool needs at least one resource")
        self.name = name
        self._free: deque[R] = deque(resources)
        self._size = len(resources)
        # call id → its waiters in arrival order; the dict's order is the round-robin order of calls.
        self._calls: OrderedDict[str, deque[_Waiter[R]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    @property
    def busy(self) -> int:
        with self._lock:
            return self._size - len(self._free)

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._calls.values())

    def acquire(self, call_id: str, timeout: float) -> R:
        waiter: _Waiter[R] = _Waiter(call_id)
        with self._lock:
            self._calls.setdefault(call_id, deque()).append(waiter)
            self._dispatch()
        if waiter.ready.wait(timeout):
            return waiter.resource  # type: ignore[return-value]
        with self._lock:
            if waiter.ready.is_set():  # handed over between the timeout and the lock
                return waiter.resource  # type: ignore[return-value]
            queue = self._calls.get(call_id)
            if queue is not None:
                queue.remove(waiter)
                if not queue:
                    del self._calls[call_id]
        raise PoolTimeout(self.name, timeout)

    def release(self, resource: R) -> None:
        with self._lock:
            self._free.append(resource)
            self._dispatch()

    @contextmanager
    def lease(self, call_id: str, timeout: float) -> Iterator[R]:
        resource = self.acquire(call_id, timeout)
        try:
            yield resource
        finally:
            self.release(resource)

    def _dispatch(self) -> None:
        """Gives free resources to the head waiter of the longest-waiting call, then rotates that call
        to the back if it has more waiters. Caller holds the lock."""
        while self._free and self._calls:
            call_id, queue = self._calls.popitem(last=False)
            waiter = queue.popleft()
            if queue:
                self._calls[call_id] = queue
            waiter.resource = self._free.popleft()
            waiter.ready.set()
