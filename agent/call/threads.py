"""Running blocking work (models, LLM streams, subprocesses) off the gevent loop, with time measured inside.

The controller is not monkey-patched: blocking libraries run in the hub's thread pool, and the greenlet that
waits for them yields, so one slow engine never stalls another call's ESL traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
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


Scope = Callable[[], AbstractContextManager[Any]]


def _next_or_done(iterator: Iterator[T], scope: Scope) -> Any:
    with scope():
        return next(iterator, _DONE)


def iterate_in_thread(iterator: Iterator[T], *, timeout: float | None = None,
                      scope: Scope = nullcontext) -> Iterator[tuple[T, float]]:
    """Advances a blocking iterator from the thread pool; yields (item, ms spent producing it).

    `scope` is entered in the pool thread around each step (the dialog uses it to know which turn writes).
    """
    while True:
        item, ms = call_in_thread(_next_or_done, iterator, scope, timeout=timeout)
        if item is _DONE:
            return
        yield item, ms


def close_in_thread(iterator: Iterator[Any], *, timeout: float, scope: Scope = nullcontext) -> bool:
    """Closes a generator from the pool (its `finally` may block); False if it is still running elsewhere
    (a step that timed out) — then it is left to finish on its own, its writes fenced off by the scope."""
    close = getattr(iterator, "close", None)
    if close is None:
        return True

    def _close() -> None:
        with scope():
            close()

    try:
        call_in_thread(_close, timeout=timeout)
        return True
    except (ValueError, gevent.Timeout):  # "generator already executing", or a finally that hangs
        return False
