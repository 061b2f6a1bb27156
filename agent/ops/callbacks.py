"""Callbacks: a caller who asked to be called back is called back, and the answered call goes to the agent.

Requests come from the dialplan (`dialplan/ai_escalation.xml`, extension `callback`: '*' in the human queue fires
CUSTOM `callagent::callback_request` with callback_number, escalation_reason, ai_call_id, ai_priority) or from
the dialog (`request_callback`). They are stored in `callbacks` (sql/006). When one is due it is placed with
`api originate` over FreeSWITCH's inbound event socket (greenswitch's InboundESL, freeswitch.md §1.2, §2):

    originate {callagent_callback=true,ai_call_id=…,escalation_reason=…}sofia/gateway/carrier/010… \
        '&socket(127.0.0.1:8084|127.0.0.1:8085 async full)'

so the answered leg lands on the agent hosts like any inbound call, with the earlier call's context in its
channel variables. `api originate` blocks the inbound connection until answer or failure, so callbacks are
placed one at a time; a failure is retried after `retry_delay_s`, up to `max_attempts`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import CallbacksConfig, Config
from agent.store.db import Database

log = logging.getLogger(__name__)

SUBCLASS = "callagent::callback_request"
NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
# Values that go inside originate's {…} block unquoted: no ',', '}', spaces or quotes.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
# Event headers handed on to the agent as channel variables of the callback.
CONTEXT_HEADERS = ("escalation_reason", "ai_call_id", "ai_priority", "variable_callagent_industry",
                   "variable_callagent_tenant", "variable_ai_did")
RECONNECT_S = 5.0


class CallbackError(ValueError):
    pass


@dataclass(frozen=True)
class CallbackRequest:
    number: str
    due_at: datetime
    call_id: str = ""
    reason: str = ""
    priority: int = 5
    context: Mapping[str, str] = field(default_factory=dict)
    source: str = "dialplan"


def _priority(value: str | None) -> int:
    try:
        return min(9, max(1, int(value or 5)))
    except ValueError:
        return 5


def request_from_event(headers: Mapping[str, str], now: datetime, delay_s: float) -> CallbackRequest:
    """The dialplan's CUSTOM event → a request; an agreed time may come as `callback_at` (ISO 8601)."""
    number = (headers.get("callback_number") or "").strip()
    if not NUMBER.match(number):
        raise CallbackError("callback request without a dialable number")
    due = now + timedelta(seconds=delay_s)
    if headers.get("callback_at"):
        try:
            due = datetime.fromisoformat(headers["callback_at"])
        except ValueError as exc:
            raise CallbackError(f"bad callback_at {headers['callback_at']!r}") from exc
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
    context: dict[str, str] = {}
    for name in CONTEXT_HEADERS:
        value = headers.get(name)
        if value and value != "_undef_":
            context[name.removeprefix("variable_")] = value
    return CallbackRequest(number=number, due_at=due, call_id=context.get("ai_call_id", ""),
                           reason=context.get("escalation_reason", ""), priority=_priority(headers.get("ai_priority")),
                           context=context)


def originate_command(row: Mapping[str, Any], cfg: CallbacksConfig) -> str:
    """The `api originate` line for one stored callback; unsafe values are left out, never passed on."""
    variables: dict[str, str] = {
        "callagent_callback": "true",
        "callagent_callback_id": str(row["id"]),
        "originate_timeout": str(int(cfg.originate_timeout_s)),
        "ignore_early_media": "true",
    }
    if cfg.caller_id:
        variables["origination_caller_id_number"] = cfg.caller_id
    context = dict(row.get("context") or {})
    context.setdefault("ai_call_id", row.get("call_id") or "")
    context.setdefault("escalation_reason", row.get("reason") or "")
    for key, value in sorted(context.items()):  # a stable line: jsonb does not keep key order
        if value and re.match(r"^[a-z_]{1,64}$", key) and SAFE_VALUE.match(str(value)):
            variables[key] = str(value)
        elif value:
            log.warning("callback %s: variable %s left out (not safe in a dial string)", row["id"], key)
    number = str(row["number"])
    if not NUMBER.match(number):
        raise CallbackError(f"callback {row['id']}: number is not dialable")
    block = ",".join(f"{k}={v}" for k, v in variables.items())
    target = cfg.dial_string.format(number=number)
    return f"originate {{{block}}}{target} '&socket({cfg.agent_socket} async full)'"


# storage ------------------------------------------------------------------------------------------------


class CallbackStore:
    def __init__(self, db: Database):
        self.db = db

    def add(self, req: CallbackRequest) -> int | None:
        """Stores a request; None when that call already has one open."""
        import json

        with self.db.connection() as conn:
            row = conn.execute(
                "INSERT INTO callbacks (number, call_id, reason, priority, context, source, due_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (req.number, req.call_id, req.reason, req.priority, json.dumps(dict(req.context)), req.source,
                 req.due_at)).fetchone()
        return row["id"] if row else None

    def claim_due(self, now: datetime, limit: int = 1) -> list[dict[str, Any]]:
        """Marks the most urgent due requests `dialing` (safe with several dialers) and returns them."""
        with self.db.connection() as conn:
            return conn.execute(
                "UPDATE callbacks SET status = 'dialing', attempts = attempts + 1, last_attempt_at = %s "
                "WHERE id IN (SELECT id FROM callbacks WHERE status = 'pending' AND due_at <= %s "
                "ORDER BY priority, due_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING *",
                (now, now, limit)).fetchall()

    def placed(self, cb_id: int, uuid: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE callbacks SET status = 'placed', placed_uuid = %s, last_error = NULL "
                         "WHERE id = %s", (uuid, cb_id))

    def failed(self, cb_id: int, error: str, retry_at: datetime | None) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE callbacks SET status = %s, due_at = COALESCE(%s, due_at), last_error = %s "
                         "WHERE id = %s", ("pending" if retry_at else "failed", retry_at, error[:500], cb_id))

    def recover(self) -> int:
        """Requests left `dialing` by a dialer that died mid-call are pending again."""
        with self.db.connection() as conn:
            return conn.execute("UPDATE callbacks SET status = 'pending' WHERE status = 'dialing'").rowcount


def request_callback(db: Database, number: str, *, due_at: datetime, call_id: str = "", reason: str = "",
                     priority: int = 5, context: Mapping[str, str] | None = None) -> int | None:
    """For the dialog: the caller agreed to be called back at `due_at`."""
    if not NUMBER.match(number):
        raise CallbackError("not a dialable number")
    return CallbackStore(db).add(CallbackRequest(number=number, due_at=due_at, call_id=call_id, reason=reason,
                                                 priority=priority, context=dict(context or {}), source="dialog"))


def list_callbacks(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    with db.connection() as conn:
        return conn.execute("SELECT id, call_id, reason, priority, source, requested_at, due_at, status, attempts, "
                            "placed_uuid, last_error FROM callbacks ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


# the dialer ------------------------------------------------------------------------------------------------


class CallbackService:
    """One inbound ESL connection: listens for requests, places due callbacks one at a time."""

    def __init__(self, cfg: CallbacksConfig, db: Database):
        self.cfg = cfg
        self.store = CallbackStore(db)
        self.esl: Any = None  # greenswitch.esl.InboundESL
        self.stored = 0

    def connect(self) -> None:
        from greenswitch.esl import InboundESL

        host, port = self.cfg.esl
        esl = InboundESL(host, port, self.cfg.esl_password or "ClueCon", timeout=5)
        esl.connect()
        esl.register_handle(SUBCLASS, self._on_request)
        self._send(esl, f"event plain CUSTOM {SUBCLASS}", 5)
        self.esl = esl
        log.info("callbacks: listening for %s on %s:%d", SUBCLASS, host, port)

    def _send(self, esl: Any, command: str, timeout: float) -> str:
        import gevent

        with gevent.Timeout(timeout, TimeoutError(f"no reply to {command.split(' ', 2)[:2]} in {timeout:.0f} s")):
            reply = esl.send(command)
        return str(reply.data or "")

    def _on_request(self, event: Any) -> None:
        # greenswitch logs every header of an event whose handler raises: the caller's number must not reach it.
        try:
            req = request_from_event(event.headers, datetime.now(UTC), self.cfg.delay_s)
            cb_id = self.store.add(req)
            self.stored += 1
            log.info("callback request stored (id %s, call %s, due %s)", cb_id, req.call_id, req.due_at.isoformat())
        except CallbackError as exc:
            log.warning("callback request ignored: %s", exc)
        except Exception:  # noqa: BLE001
            log.exception("callback request could not be stored")

    def place_due(self, now: datetime) -> int:
        """Places every callback due at `now`; returns how many were tried."""
        tried = 0
        while True:
            rows = self.store.claim_due(now)
            if not rows:
                return tried
            tried += 1
            self._place(rows[0], now)

    def _place(self, row: dict[str, Any], now: datetime) -> None:
        try:
            reply = self._send(self.esl, f"api {originate_command(row, self.cfg)}", self.cfg.originate_timeout_s + 15)
        except CallbackError as exc:
            self.store.failed(row["id"], str(exc), None)
            return
        except Exception as exc:  # noqa: BLE001 - the connection is gone: try again later
            retry = now + timedelta(seconds=self.cfg.retry_delay_s)
            self.store.failed(row["id"], f"{type(exc).__name__}: {exc}", retry)
            raise
        reply = reply.strip()
        if reply.startswith("+OK"):
            self.store.placed(row["id"], reply[3:].strip())
            log.info("callback %s placed as %s (attempt %d)", row["id"], reply[3:].strip(), row["attempts"])
            return
        last = row["attempts"] >= self.cfg.max_attempts
        retry = None if last else now + timedelta(seconds=self.cfg.retry_delay_s)
        self.store.failed(row["id"], reply or "no reply", retry)
        log.warning("callback %s attempt %d failed: %s%s", row["id"], row["attempts"], reply,
                    " (giving up)" if last else "")

    def run(self) -> None:
        import gevent

        self.store.recover()
        while True:
            try:
                if self.esl is None or not self.esl.connected:
                    self.connect()
                self.place_due(datetime.now(UTC))
                gevent.sleep(self.cfg.poll_s)
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("callbacks: inbound event socket unavailable (%s); retrying in %.0f s", exc, RECONNECT_S)
                self.close()
                gevent.sleep(RECONNECT_S)

    def close(self) -> None:
        esl, self.esl = self.esl, None
        if esl is not None:
            with contextlib.suppress(Exception):  # already gone
                esl.stop()


def run_callbacks(cfg: Config, db: Database) -> int:
    service = CallbackService(cfg.callbacks, db)
    try:
        service.run()
    finally:
        service.close()
    return 0
