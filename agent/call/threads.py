"""Running blocking work (models, LLM streams, subprocesses) off the gevent loop, with time measured inside.

The controller is not monkey-patched: blocking libraries run in the hub's thread pool, and the greenlet that
waits for them yields, so one slow engine never stalls another call's ESL traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import gevent

T = TypeVar("T")
_DONE = object()


def _timed(fn: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, (time.perf_counter() - start) * 1000.0


def call_in_thread(fn: Callable[..., T], *args: Any, timeout: float | None = None) -> tuple[T, float]:
    """Runs fn(*args) in the hub's thread pool; returns (result, ms spent inside the thread).
    Raises gevent.Timeout after `timeout` seconds (the thread finishes on its own; its result is dropped)."""
    with gevent.Timeout(timeout):
        return gevent.get_hub().threadpool.apply(_timed, (fn, args))


def _next_or_done(iterator: Iterator[T]) -> Any:
    return next(iterator, _DONE)


def iterate_in_thread(iterator: Iterator[T], *, timeout: float | None = None) -> Iterator[tuple[T, float]]:
    """Advances a blocking iterator from the thread pool; yields (item, ms spent producing it)."""
    while True:
        item, ms = call_in_thread(_next_or_done, iterator, timeout=timeout)
        if item is _DONE:
            return
        yield item, ms
