"""The per-call vault with the LLM policy over real HTTP (a local OpenAI-compatible server): the model provider
receives placeholders only, the tools act on the real values the caller said, what the caller hears names
only the last digits, and the stored turns are masked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dialog"))

from dialog_llm_server import OpenAIServer  # noqa: E402
from dialog_support import FakeClock  # noqa: E402

from agent.call.channel import ChannelInfo  # noqa: E402
from agent.call.record import CallRecord  # noqa: E402
from agent.dialog.knowledge import KnowledgeBase  # noqa: E402
from agent.dialog.llm import LlmClient  # noqa: E402
from agent.dialog.llm_policy import LlmPolicy  # noqa: E402
from agent.dialog.packs import load_pack  # noqa: E402
from agent.dialog.policy import CallInfo, Say, ToolUsed  # noqa: E402
from agent.dialog.settings import parse_dialog_settings  # noqa: E402
from agent.store.calls import CallStore, now_utc  # noqa: E402
from agent.store.crm import EmbeddedCrm  # noqa: E402
from agent.store.db import Database  # noqa: E402


def policy(srv: OpenAIServer, db: Database, pack: str) -> LlmPolicy:
    settings = parse_dialog_settings({"policy": "llm", "pack": pack,
                                      "llm": {"model": "openai/qwen-test", "api_base": srv.base, "timeout_s": 10}})
    client = LlmClient(model="openai/qwen-test", api_base=srv.base, max_tokens=200)
    return LlmPolicy(settings=settings, pack=load_pack(pack), llm=client, crm=EmbeddedCrm(db),
                     kb=KnowledgeBase(db, pack), clock=FakeClock())


def sent_to_model(srv: OpenAIServer) -> str:
    return json.dumps(srv.requests, ensure_ascii=False)


def store_turns(db: Database, tmp_path: Path, call_id: str, caller_text: str, says: list[str]) -> str:
    store = CallStore(db, tmp_path)
    record = CallRecord(store, ChannelInfo(uuid=call_id, caller="01012345678"))
    record.turn(record.next_turn_seq(), "caller", caller_text, started_at=now_utc(), source="asr")
    record.turn(record.next_turn_seq(), "agent", " ".join(says), started_at=now_utc(), source="policy")
    assert store.flush(10)
    store.close()
    with db.connection() as conn:
        rows = conn.execute("SELECT text FROM turns WHERE call_id = %s ORDER BY seq", (call_id,)).fetchall()
    return json.dumps(rows, ensure_ascii=False)


def test_bank_account_lookup_with_the_number_only_in_the_vault(db: Database, tmp_path: Path) -> None:
    said = "생년월일은 1985년 3월 12일이고 계좌번호는 110-123-456789예요. 잔액 알려 주세요"

    def script(body: dict, n: int) -> list:
        if n == 0:
            return [("tool", "c1", "verify_identity", {"birth_date": "[BIRTH_DATE_1]", "account_last4": "[ACCOUNT_1]"})]
        if n == 1:
            return [("tool", "c2", "lookup_account", {"account_last4": "[ACCOUNT_1]"})]
        return [("text", "[ACCOUNT_1] 계좌 잔액은 백오십삼만 이천 원입니다.")]

    with OpenAIServer(script) as srv:
        conv = policy(srv, db, "banking").open(CallInfo(call_id="v1", caller="01012345678"))
        events = list(conv.respond(said, "asr"))
    used = [(e.name, e.ok) for e in events if isinstance(e, ToolUsed)]
    assert used == [("verify_identity", True), ("lookup_account", True)]  # the tools got the real values
    assert conv.state.verified_customer_id == "C1001"
    sent = sent_to_model(srv)
    for secret in ("456789", "110-123", "110123", "1985", "3월 12일"):
        assert secret not in sent, secret
    assert "[ACCOUNT_1]" in sent and "[BIRTH_DATE_1]" in sent
    tool_result = json.loads(srv.requests[2]["messages"][-1]["content"])
    assert tool_result["ok"] and tool_result["accounts"][0]["balance_won"] == 1532000
    says = [e.text for e in events if isinstance(e, Say)]
    assert says == ["계좌번호 끝자리 6789 계좌 잔액은 백오십삼만 이천 원입니다."]
    rows = store_turns(db, tmp_path, "v1", said, says)
    assert "456789" not in rows and "1985" not in rows and "[계좌번호 ****6789]" in rows
    summary = conv.summary()
    assert "456789" not in summary and "[ACCOUNT_" not in summary


def test_phone_change_reaches_the_crm_not_the_model(db: Database) -> None:
    said = "연락처를 010-9876-5432로 바꿔 주세요"

    def script(body: dict, n: int) -> list:
        if n == 0:
            return [("tool", "c1", "update_customer_info", {"field": "phone", "new_value": "[PHONE_1]"})]
        return [("text", "네, 연락처를 [PHONE_1]로 바꿔 드렸어요.")]

    crm = EmbeddedCrm(db)
    with OpenAIServer(script) as srv:
        conv = policy(srv, db, "ecommerce").open(CallInfo(call_id="v2", caller="01012345678"))
        events = list(conv.respond(said, "asr"))
    assert [(e.name, e.ok) for e in events if isinstance(e, ToolUsed)] == [("update_customer_info", True)]
    assert crm.get_customer("C1001")["phone"] == "01098765432"
    assert "9876" not in sent_to_model(srv) and "[PHONE_1]" in sent_to_model(srv)
    assert [e.text for e in events if isinstance(e, Say)] == ["네, 연락처를 전화번호 끝자리 5432로 바꿔 드렸어요."]


def test_a_placeholder_the_caller_never_filled_resolves_to_nothing_real(db: Database) -> None:
    def script(body: dict, n: int) -> list:
        if n == 0:
            return [("tool", "c1", "update_customer_info", {"field": "phone", "new_value": "[PHONE_7]"})]
        return [("text", "확인해 볼게요.")]

    crm = EmbeddedCrm(db)
    before = crm.get_customer("C1001")["phone"]
    with OpenAIServer(script) as srv:
        conv = policy(srv, db, "ecommerce").open(CallInfo(call_id="v3", caller="01012345678"))
        events = list(conv.respond("연락처 바꾸고 싶어요", "asr"))
    assert [(e.name, e.ok) for e in events if isinstance(e, ToolUsed)] == [("update_customer_info", False)]
    assert crm.get_customer("C1001")["phone"] == before


def test_keypad_entry_reaches_the_model_as_a_placeholder(db: Database) -> None:
    """Typed digits may be a PIN: the model sees [KEYPAD_1]; a tool given it looks up the real number."""
    def script(body: dict, n: int) -> list:
        if n == 0:
            return [("tool", "c1", "lookup_order", {"order_id": "[KEYPAD_1]"})]
        return [("text", "주문하신 상품은 배송 중이에요.")]

    with OpenAIServer(script) as srv:
        conv = policy(srv, db, "ecommerce").open(CallInfo(call_id="v4", caller="01012345678"))
        events = list(conv.respond("123456", "dtmf"))
    assert [(e.name, e.ok) for e in events if isinstance(e, ToolUsed)] == [("lookup_order", True)]
    first = json.dumps(srv.requests[0]["messages"], ensure_ascii=False)  # (the tool schema's example is 123456)
    assert "123456" not in first and "[KEYPAD_1]" in first
    assert conv.state.caller_said_digits("123456")  # still usable for checks in memory


class _SummaryModel(LlmClient):
    """A model whose summary repeats what it saw and adds a number of its own (as a model may)."""

    def complete(self, messages, *, timeout_s: float) -> str:  # noqa: ANN001 - the LlmClient signature
        return messages[-1]["content"].replace("\n", " ") + " 연락처 010-2222-3333"


def test_the_summary_carries_masked_forms_only(db: Database) -> None:
    settings = parse_dialog_settings({"policy": "llm", "pack": "banking",
                                      "llm": {"model": "openai/x", "api_base": "http://127.0.0.1:9"}})
    conv = LlmPolicy(settings=settings, pack=load_pack("banking"), llm=_SummaryModel(model="openai/x"),
                     crm=EmbeddedCrm(db), kb=None, clock=FakeClock()).open(CallInfo(call_id="v5"))
    conv.state.add_caller("계좌번호는 110-123-456789이고 비밀번호는 4321이에요")
    summary = conv.summary()
    assert summary == ("고객: 계좌번호는 [계좌번호 ****6789]이고 비밀번호는 [비밀번호]이에요 "
                       "연락처 [전화번호 ****3333]")
