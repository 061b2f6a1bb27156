"""Logs an operator can ship: JSON (or text) lines with the call id bound once per call, and never a secret.

`bind_call(uuid)` is called once by the call's session. Under gevent each greenlet has its own context, so the
id is also remembered per greenlet and found again by walking `spawning_greenlet`: the turn, escalation and
watchdog greenlets a session spawns log with its call id without binding again. asyncio tasks (the worker) copy
their context when created, so the context variable alone is enough there.

Secrets: known shapes (URI passwords, `password=…`, ESL `auth …`) are masked in every message and traceback;
other rooms add their own redactors (PII) with `add_redactor`.

Idle or garbage connections (a port scanner, a TCP health check, a TLS hello) must not fill the log with
tracebacks: a traceback outside any call becomes one warning line, and a repeated one is rate-limited.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import greenlet
from pythonjsonlogger.json import JsonFormatter

CALL_ID: ContextVar[str | None] = ContextVar("callagent_call_id", default=None)
CallIdSource = str | Callable[[], "str | None"]
_by_greenlet: weakref.WeakKeyDictionary[greenlet.greenlet, CallIdSource] = weakref.WeakKeyDictionary()
_MAX_PARENTS = 32
REPEAT_WINDOW_S = 60.0

Redactor = Callable[[str], str]
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I), r"\1***@"),  # scheme://user:pw@
    (re.compile(r"\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)", re.I),
     r"\1\2***"),
    (re.compile(r"\b(auth|userauth)\s+\S+"), r"\1 ***"),  # ESL inbound auth (freeswitch.md §1.2)
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
]
_redactors: list[Redactor] = []


def bind_call(call_id: str | None) -> None:
    """Binds `call_id` to every log line of the current greenlet (or task) and the greenlets it spawns."""
    CALL_ID.set(call_id)
    current = greenlet.getcurrent()
    # Only gevent greenlets: a thread's main greenlet is shared by all its asyncio tasks.
    if current.parent is not None:
        if call_id is None:
            _by_greenlet.pop(current, None)
        else:
            _by_greenlet[current] = call_id


def bind_call_lazy(source: Callable[[], str | None]) -> None:
    """For the controller's per-connection greenlet: the call id is known only once FreeSWITCH answers
    `connect`, so `source()` is asked each time a line is logged (the session itself never has to bind)."""
    current = greenlet.getcurrent()
    if current.parent is not None:
        _by_greenlet[current] = source


def current_call() -> str | None:
    bound = CALL_ID.get()
    if bound:
        return bound
    g: greenlet.greenlet | None = greenlet.getcurrent()
    for _ in range(_MAX_PARENTS):
        if g is None:
            return None
        found = _by_greenlet.get(g)
        if callable(found):
            found = found()
        if found:
            return found
        ref = getattr(g, "spawning_greenlet", None)  # gevent.Greenlet keeps a weakref to its spawner
        g = ref() if ref is not None else None
    return None


def add_redactor(fn: Redactor) -> None:
    """Registers a text filter applied to every message and traceback (e.g. agent.privacy's PII masking)."""
    if fn not in _redactors:
        _redactors.append(fn)


def redact(text: str) -> str:
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    for fn in _redactors:
        text = fn(text)
    return text


class CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "call_id", None):
            record.call_id = current_call()
        return True


@dataclass
class RepeatLimiter:
    """Pure core of the traceback limiter: the first of a kind per window passes, the rest are counted."""

    window_s: float = REPEAT_WINDOW_S
    _first: dict[tuple[str, ...], float] = field(default_factory=dict)
    _dropped: dict[tuple[str, ...], int] = field(default_factory=dict)

    def allow(self, key: tuple[str, ...], now: float) -> tuple[bool, int]:
        """(emit?, how many of this kind were dropped since the last one emitted)."""
        first = self._first.get(key)
        if first is not None and now - first < self.window_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False, 0
        self._first[key] = now
        return True, self._dropped.pop(key, 0)


class QuietConnectionErrors(logging.Filter):
    """A call-path traceback logged outside any call (no call id: the peer never became a call) → one warning
    line, at most once per minute per kind; tracebacks inside calls and from other rooms are kept."""

    PREFIXES = ("agent.call", "agent.esl")

    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: float = REPEAT_WINDOW_S):
        super().__init__()
        self.clock = clock
        self.limiter = RepeatLimiter(window_s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or not record.name.startswith(self.PREFIXES):
            return True
        if getattr(record, "call_id", None) or current_call():
            return True
        exc = record.exc_info[1]
        kind = type(exc).__name__ if exc is not None else "?"
        emit, dropped = self.limiter.allow((record.name, str(record.msg), kind), self.clock())
        if not emit:
            return False
        record.msg = f"{record.getMessage()}: {kind}: {exc}" + (f" ({dropped} more like it)" if dropped else "")
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class _Redacting:
    """Mixin for formatters: the final text of a record, traceback included, goes through `redact`."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's naming
        record.message = redact(record.message)
        return super().formatMessage(record)  # type: ignore[misc]

    def formatException(self, ei) -> str:  # noqa: N802
        return redact(super().formatException(ei))  # type: ignore[misc]


class RedactingJsonFormatter(_Redacting, JsonFormatter):
    def process_log_record(self, log_record: dict) -> dict:
        if isinstance(log_record.get("message"), str):
            log_record["message"] = redact(log_record["message"])
        return log_record


class RedactingTextFormatter(_Redacting, logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        call_id = getattr(record, "call_id", None)
        record.call_id = call_id or "-"
        try:
            return redact(super().format(record))
        finally:
            record.call_id = call_id


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(call_id)s]: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "call_id", "message"]


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return RedactingJsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level",
                                                                  "name": "logger"},
                                      json_ensure_ascii=False)
    return RedactingTextFormatter(TEXT_FORMAT)


def configure_logging(level: str = "INFO", fmt: str = "text", stream=None) -> logging.Handler:
    """Replaces the root handlers with one that binds call ids, quiets connection noise and masks secrets."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CallIdFilter())
    handler.addFilter(QuietConnectionErrors())
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
