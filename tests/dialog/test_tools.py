"""Tools behind the CrmAdapter: the embedded demo CRM, the REST adapter over real HTTP, identity
guardrails, fillers for slow tools, and the OpenAI schemas."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from dialog_support import FakeClock

from agent.dialog.crm import CrmError, RestCrm
from agent.dialog.escalation import EscalationManager
from agent.dialog.packs import load_pack
from agent.dialog.policy import CallInfo, Filler, ToolUsed
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState
from agent.dialog.tools import ALL, FILLERS, ToolBox, next_filler
from agent.dialog.tools.base import ToolContext
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database


def ctx_for(crm: Any, caller: str = "", pack: str = "ecommerce") -> ToolContext:
    state = DialogState(call=CallInfo(call_id="t1", caller=caller), pack=load_pack(pack), clock=FakeClock())
    return ToolContext(state=state, crm=crm, kb=None, escalation=EscalationManager(EscalationSettings()))


def call(box: ToolBox, name: str, args: dict[str, Any], ctx: ToolContext) -> tuple[Any, list]:
    events: list = []
    gen = box.call(name, args, ctx)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return stop.value, events


def test_schemas_are_openai_tools() -> None:
    assert {"lookup_order", "check_delivery", "process_return", "search_faq", "update_customer_info",
            "escalate_to_human"} <= set(ALL)
    box = ToolBox(load_pack("ecommerce"))
    for schema in box.schemas():
        assert schema["type"] == "function"
        fn = schema["function"]
        assert fn["description"] and fn["parameters"]["type"] == "object"
        json.dumps(schema)
    assert "lookup_account" not in box.names  # banking only


def test_embedded_crm_demo_data(db: Database) -> None:
    crm = EmbeddedCrm(db)
    order = crm.get_order("123456")
    assert order["customer_name"] == "김민지" and order["delivery"]["carrier"] == "CJ대한통운"
    assert crm.find_customers(phone="01012345678")[0]["customer_id"] == "C1001"
    assert crm.get_order("999999") is None
    assert crm.verify_bank_customer(date(1985, 3, 12), "6789")["customer_id"] == "C1001"
    assert crm.verify_bank_customer(date(1985, 3, 12), "0000") is None


def test_lookup_refused_until_verified_then_answers(db: Database) -> None:
    box, ctx = ToolBox(load_pack("ecommerce")), ctx_for(EmbeddedCrm(db), caller="0299998888")
    result, events = call(box, "lookup_order", {"order_id": "123456"}, ctx)
    assert not result.ok and result.data["error"] == "verification_required"
    assert "123456" not in json.dumps(result.message(), ensure_ascii=False).replace('"order_id"', "")
    assert events == [ToolUsed(name="lookup_order", ok=False, ms=events[0].ms)]
    # The model cannot verify with values the caller never said.
    result, _ = call(box, "verify_identity", {"customer_name": "김민지", "phone_last4": "5678"}, ctx)
    assert not result.ok and result.data["error"] == "not_said_by_caller"
    ctx.state.add_caller("김민지요, 뒷자리는 오육칠팔이에요")
    result, _ = call(box, "verify_identity", {"customer_name": "김민지", "phone_last4": "5678"}, ctx)
    assert result.ok and ctx.state.verified_customer_id == "C1001"
    result, _ = call(box, "lookup_order", {"order_id": "123456"}, ctx)
    assert result.ok and result.data["status"] == "shipped" and "CJ대한통운" in result.say


def test_caller_id_verifies_only_its_own_orders(db: Database) -> None:
    box, ctx = ToolBox(load_pack("ecommerce")), ctx_for(EmbeddedCrm(db), caller="+82-10-1234-5678")
    assert call(box, "lookup_order", {"order_id": "123456"}, ctx)[0].ok
    other, _ = call(box, "lookup_order", {"order_id": "345678"}, ctx)  # 이서준's order
    assert not other.ok and other.data["error"] == "verification_required"


def test_process_return_guardrails(db: Database) -> None:
    crm = EmbeddedCrm(db)
    box, ctx = ToolBox(load_pack("ecommerce")), ctx_for(crm, caller="01012345678")
    args = {"order_id": "234567", "return_type": "반품", "reason": "단순 변심"}
    # Not asked for by the caller: refused even though the caller ID matches.
    assert call(box, "process_return", args, ctx)[0].data["error"] == "not_requested_by_caller"
    ctx.state.return_requested = True
    ctx.state.writes_blocked = True  # a prompt-injection turn
    assert call(box, "process_return", args, ctx)[0].data["error"] == "blocked"
    ctx.state.writes_blocked = False
    assert call(box, "process_return", {**args, "order_id": "123456"}, ctx)[0].data["error"] == "not_delivered"
    result, _ = call(box, "process_return", args, ctx)
    assert result.ok and result.data["status"] == "requested" and "상담원" in result.data["refund"]
    assert [r["status"] for r in crm.returns_for_order("234567")] == ["requested"]
    assert call(box, "process_return", args, ctx)[0].data["error"] == "already_requested"


def test_process_return_before_verification_is_refused(db: Database) -> None:
    crm = EmbeddedCrm(db)
    box, ctx = ToolBox(load_pack("ecommerce")), ctx_for(crm, caller="")
    ctx.state.return_requested = True
    result, _ = call(box, "process_return", {"order_id": "456789", "return_type": "반품"}, ctx)
    assert not result.ok and result.data["error"] == "verification_required"
    assert crm.returns_for_order("456789") == []


def test_update_only_with_values_the_caller_said(db: Database) -> None:
    crm = EmbeddedCrm(db)
    box, ctx = ToolBox(load_pack("ecommerce")), ctx_for(crm, caller="01056789012")
    args = {"field": "address", "new_value": "인천광역시 연수구 컨벤시아대로 1"}
    assert call(box, "update_customer_info", args, ctx)[0].data["error"] == "value_not_from_caller"
    ctx.state.add_caller("주소를 인천광역시 연수구 컨벤시아대로 1로 바꿔 주세요")
    assert call(box, "update_customer_info", {**args, "customer_id": "C1001"}, ctx)[0].data["error"] == \
        "verification_required"  # someone else's id
    assert call(box, "update_customer_info", args, ctx)[0].ok
    assert crm.get_customer("C1005")["address"] == args["new_value"]


def test_banking_verification_and_balance(db: Database) -> None:
    box, ctx = ToolBox(load_pack("banking")), ctx_for(EmbeddedCrm(db), caller="01012345678", pack="banking")
    # Caller ID alone never verifies a bank customer.
    assert call(box, "lookup_account", {}, ctx)[0].data["error"] == "verification_required"
    ctx.state.add_caller("생년월일은 1985년 3월 12일이고 계좌 뒷자리는 6789예요")
    result, _ = call(box, "verify_identity", {"birth_date": "1985-03-12", "account_last4": "6789"}, ctx)
    assert result.ok
    result, _ = call(box, "lookup_account", {}, ctx)
    assert result.ok and "1,532,000원" in result.say
    assert all("account_number" not in a for a in result.data["accounts"])


def test_unknown_or_disallowed_tool_is_refused(db: Database) -> None:
    box, ctx = ToolBox(load_pack("telecom")), ctx_for(EmbeddedCrm(db))
    result, _ = call(box, "lookup_order", {"order_id": "123456"}, ctx)
    assert result.data["error"] == "unknown_tool"


class SlowCrm:
    name = "slow"

    def __init__(self, delay: float):
        self.delay = delay

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        time.sleep(self.delay)
        return None


def test_slow_tool_yields_a_filler_never_the_same_twice() -> None:
    box = ToolBox(load_pack("ecommerce"), filler_after_s=0.05, timeout_s=2)
    ctx = ctx_for(SlowCrm(0.2))
    said = []
    for _ in range(3):
        result, events = call(box, "lookup_order", {"order_id": "111111"}, ctx)
        fillers = [e for e in events if isinstance(e, Filler)]
        assert len(fillers) == 1 and isinstance(events[-1], ToolUsed) and events[-1].ms >= 200
        said.append(fillers[0].text)
    assert said[0] != said[1] != said[2] and all(s in FILLERS for s in said)
    assert next_filler(FILLERS[-1]) == FILLERS[0]
    fast = ToolBox(load_pack("ecommerce"), filler_after_s=1.0)
    assert not [e for e in call(fast, "lookup_order", {"order_id": "1"}, ctx_for(SlowCrm(0)))[1]
                if isinstance(e, Filler)]


def test_tool_timeout_becomes_an_apology() -> None:
    box = ToolBox(load_pack("ecommerce"), filler_after_s=0.05, timeout_s=0.2)
    result, events = call(box, "lookup_order", {"order_id": "111111"}, ctx_for(SlowCrm(1.0)))
    assert result.data["error"] == "timeout" and result.say
    assert isinstance(events[0], Filler) and events[-1].ok is False


class CrmHandler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(("GET", self.path, self.headers.get("X-Api-Key")))
        if self.path == "/api/orders/123456":
            self._reply(200, {"order_id": "123456", "customer_id": "A7", "status": "shipped", "items": [],
                              "delivery": None})
        elif self.path.startswith("/api/slow"):
            time.sleep(1)
            self._reply(200, {})
        elif self.path.startswith("/api/customers?"):
            self._reply(200, [{"customer_id": "A7", "name": "김민지", "phone": "01012345678"}])
        elif self.path.startswith("/api/boom"):
            self._reply(500, {"error": "x"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.path, json.dumps(body, ensure_ascii=False)))
        self._reply(201, {"return_id": 9, "status": "requested", **body})


@pytest.fixture
def crm_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CrmHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    CrmHandler.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    httpd.shutdown()
    httpd.server_close()


def test_rest_crm_over_http(crm_server: str) -> None:
    crm = RestCrm(crm_server, auth_header="X-Api-Key", auth_value="s3cret", timeout_s=0.5)
    assert crm.get_order("123456")["customer_id"] == "A7"
    assert crm.get_order("000000") is None
    assert crm.find_customers(phone="01012345678")[0]["name"] == "김민지"
    created = crm.create_return("123456", "A7", "교환", "사이즈", "call-1")
    assert created["return_id"] == 9
    assert all(key == "s3cret" for method, _, key in CrmHandler.seen if method == "GET")
    assert CrmHandler.seen[-1][:2] == ("POST", "/api/returns") and "교환" in CrmHandler.seen[-1][2]
    slow = RestCrm(crm_server + "/slow", timeout_s=0.2)
    with pytest.raises(CrmError):
        slow.get_customer("x")
    with pytest.raises(CrmError):
        RestCrm(crm_server + "/boom").get_customer("x")
    with pytest.raises(CrmError):
        RestCrm("http://127.0.0.1:9", timeout_s=0.5).get_customer("x")
