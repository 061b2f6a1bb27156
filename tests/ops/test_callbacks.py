"""Callbacks: the dialplan's request is stored, then placed with `originate` over the inbound event socket.

The switch side is a fake inbound event socket written from freeswitch.md §1.2 (auth/request, `auth`,
`event plain …`, `api` → api/response, events as text/event-plain with URL-encoded values).
"""

from __future__ import annotations

import re
import socket
import threading
import uuid as uuidlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import gevent
import pytest

from agent.config import parse_config
from agent.ops.callbacks import (
    CallbackError,
    CallbackService,
    originate_command,
    request_callback,
    request_from_event,
)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-esl"


class FakeInboundSwitch:
    """FreeSWITCH's inbound event socket, one client, as in freeswitch.md §1.2."""

    def __init__(self, api_replies: list[str] | None = None):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.commands: list[str] = []
        self.api_replies = list(api_replies or [])
        self.placed: list[str] = []
        self.subscribed: set[str] = set()
        self.conn: socket.socket | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _send(self, data: str) -> None:
        assert self.conn is not None
        with self._lock:
            self.conn.sendall(data.encode())

    def _reply(self, text: str) -> None:
        self._send(f"Content-Type: command/reply\nReply-Text: {text}\n\n")

    def _serve(self) -> None:
        self.conn, _ = self.server.accept()
        self._send("Content-Type: auth/request\n\n")
        buf = b""
        while True:
            while b"\n\n" not in buf:
                data = self.conn.recv(65536)
                if not data:
                    return
                buf += data
            raw, buf = buf.split(b"\n\n", 1)
            line = raw.decode().split("\n")[0].strip()
            self.commands.append(line)
            if line.startswith("auth "):
                if line[5:] != PASSWORD:
                    self._reply("-ERR invalid")
                    self.conn.close()
                    return
                self._reply("+OK accepted")
            elif line.startswith("event plain "):
                tokens = line.split()[2:]
                self.subscribed.update(tokens[tokens.index("CUSTOM") + 1:] if "CUSTOM" in tokens else tokens)
                self._reply("+OK event listener enabled plain")
            elif line.startswith("api "):
                body = self.api_replies.pop(0) if self.api_replies else f"+OK {uuidlib.uuid4()}\n"
                if body.startswith("+OK"):
                    self.placed.append(body.split()[1])
                size = len(body.encode())
                self._send(f"Content-Type: api/response\nContent-Length: {size}\n\n{body}")
            elif line == "exit":
                self._reply("+OK bye")
                notice = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
                self._send("Content-Type: text/disconnect-notice\nContent-Disposition: disconnect\n"
                           f"Content-Length: {len(notice)}\n\n{notice}")
                self.conn.close()
                return
            else:
                self._reply("-ERR command not found")

    def fire_custom(self, subclass: str, headers: dict[str, str]) -> None:
        if subclass not in self.subscribed:
            return  # FreeSWITCH delivers only what the client subscribed to (§1.5)
        fields = {"Event-Name": "CUSTOM", "Core-UUID": str(uuidlib.uuid4()), "Event-Subclass": subclass,
                  "Event-Date-GMT": "Sun, 29 Nov 2026 15:00:00 GMT", **headers}
        body = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in fields.items()) + "\n"
        self._send(f"Content-Length: {len(body.encode())}\nContent-Type: text/event-plain\n\n{body}")


def dialplan_event_headers(values: dict[str, str]) -> dict[str, str]:
    """The headers ai_escalation.xml's `callback` extension puts on its event, with `values` for ${…}."""
    root = ET.parse(REPO / "dialplan" / "ai_escalation.xml").getroot()
    ext = next(e for e in root.iter("extension") if e.get("name") == "callback")
    data = next(a.get("data") for a in ext.iter("action") if a.get("application") == "event")
    headers = dict(pair.split("=", 1) for pair in data.split(","))
    assert headers.pop("Event-Subclass") == "callagent::callback_request"
    return {k: re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], v) for k, v in headers.items()
            if k != "Event-Name"}


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not predicate():
        assert datetime.now(UTC) < deadline, "condition not reached in time"
        gevent.sleep(0.02)


def rows(db) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM callbacks ORDER BY id").fetchall()


def make_service(db, switch: FakeInboundSwitch, monkeypatch, **extra) -> CallbackService:
    monkeypatch.setenv("CALLAGENT_ESL_PASSWORD", PASSWORD)
    cfg = parse_config({"callbacks": {"esl": f"127.0.0.1:{switch.port}", "dial_string": "sofia/gateway/kt/{number}",
                                      "caller_id": "0215881000", "delay_s": 60, "retry_delay_s": 300, **extra}})
    service = CallbackService(cfg.callbacks, db)
    service.connect()
    return service


AI_CALL = "6f1c1f0e-5b0a-4d4b-9f57-2b8f3f0c9a11"


def test_dialplan_request_is_stored_and_placed_with_the_callers_context(db, monkeypatch):
    switch = FakeInboundSwitch()
    service = make_service(db, switch, monkeypatch)
    try:
        assert switch.commands == [f"auth {PASSWORD}", "event plain CUSTOM callagent::callback_request"]
        headers = dialplan_event_headers({"caller_id_number": "01098765432", "escalation_reason": "caller_requested",
                                          "ai_call_id": AI_CALL, "ai_priority": "3"})
        switch.fire_custom("callagent::callback_request",
                           {**headers, "Unique-ID": AI_CALL, "variable_callagent_industry": "ecommerce"})
        wait_for(lambda: service.stored == 1)
        (row,) = rows(db)
        assert (row["number"], row["call_id"], row["reason"], row["priority"], row["status"]) == (
            "01098765432", AI_CALL, "caller_requested", 3, "pending")
        assert abs((row["due_at"] - row["requested_at"]).total_seconds() - 60) < 5  # callbacks.delay_s

        assert service.place_due(row["requested_at"]) == 0  # not due yet: nothing dialled
        assert not any(c.startswith("api") for c in switch.commands)
        assert service.place_due(row["due_at"] + timedelta(seconds=1)) == 1
        api = [c for c in switch.commands if c.startswith("api ")]
        assert api == [
            f"api originate {{callagent_callback=true,callagent_callback_id={row['id']},originate_timeout=45,"
            f"ignore_early_media=true,origination_caller_id_number=0215881000,ai_call_id={AI_CALL},ai_priority=3,"
            "callagent_industry=ecommerce,escalation_reason=caller_requested}sofia/gateway/kt/01098765432 "
            "'&socket(127.0.0.1:8084|127.0.0.1:8085 async full)'"]
        (row,) = rows(db)
        assert row["status"] == "placed" and row["placed_uuid"] == switch.placed[0] and row["attempts"] == 1
    finally:
        service.close()


def test_failed_originate_is_retried_then_given_up(db, monkeypatch):
    switch = FakeInboundSwitch(api_replies=["-ERR NO_ANSWER\n", "-ERR USER_BUSY\n"])
    service = make_service(db, switch, monkeypatch, max_attempts=2)
    try:
        now = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
        assert request_callback(db, "01011112222", due_at=now, call_id=AI_CALL, reason="caller_requested") is not None
        assert request_callback(db, "01011112222", due_at=now, call_id=AI_CALL) is None  # one open per call
        assert service.place_due(now) == 1
        (row,) = rows(db)
        assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "-ERR NO_ANSWER")
        assert row["due_at"] == now + timedelta(seconds=300)
        assert service.place_due(now + timedelta(seconds=299)) == 0
        assert service.place_due(now + timedelta(seconds=300)) == 1
        (row,) = rows(db)
        assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 2, "-ERR USER_BUSY")
        assert service.place_due(now + timedelta(days=1)) == 0
    finally:
        service.close()


def test_wrong_password_is_refused(db, monkeypatch):
    switch = FakeInboundSwitch()
    monkeypatch.setenv("CALLAGENT_ESL_PASSWORD", "wrong")
    cfg = parse_config({"callbacks": {"esl": f"127.0.0.1:{switch.port}"}})
    with pytest.raises(ValueError):
        CallbackService(cfg.callbacks, db).connect()


def test_nothing_unsafe_reaches_the_dial_string():
    now = datetime(2026, 11, 29, tzinfo=UTC)
    with pytest.raises(CallbackError):
        request_from_event({"callback_number": "0101234' &system(reboot)"}, now, 0)
    req = request_from_event({"callback_number": "+821012345678", "escalation_reason": "x,y}sofia/evil",
                              "callback_at": "2026-11-30T10:00:00+09:00"}, now, 0)
    assert req.due_at == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    cfg = parse_config({}).callbacks
    line = originate_command({"id": 7, "number": req.number, "context": dict(req.context), "call_id": "",
                              "reason": req.reason}, cfg)
    assert "evil" not in line and line.count("{") == 1 and "}sofia/gateway/carrier/+821012345678 " in line
