"""The LLM's circuit breaker through real HTTP (litellm against the local OpenAI-compatible server): a server
that dies or hangs mid-call costs at most one turn's timeout, the next turns go to the scripted policy without
waiting (every call of the process shares the breaker), and the probe brings the model back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dialog_llm_server import OpenAIServer
from dialog_support import FakeClock

from agent.dialog.escalation import extractive_summary
from agent.dialog.factory import create_policy
from agent.dialog.llm import LlmError, LlmTimeout, server_down
from agent.dialog.llm_guard import GUARDS
from agent.dialog.llm_policy import LlmPolicy
from agent.dialog.policy import CallInfo, Say, ToolUsed
from agent.dialog.settings import parse_dialog_settings
from agent.engines.breaker import CLOSED, HALF_OPEN, OPEN
from agent.ops.metrics import _breakers
from agent.store.db import Database

LLM_SAYS = "네, 말씀해 주세요."


@pytest.fixture(autouse=True)
def _forget_guards() -> Iterator[None]:
    yield
    for guard in list(GUARDS.values()):
        guard.stop()


def make_policy(base: str, db: Database, **llm: Any) -> LlmPolicy:
    settings = parse_dialog_settings({"policy": "llm", "pack": "ecommerce", "kb": {"index_pack_kb": False},
                                      "llm": {"model": "openai/qwen-test", "api_base": base, "timeout_s": 5.0,
                                              "probe_every_s": 0.1, "probe_timeout_s": 0.5, **llm}})
    policy = create_policy(settings, db, clock=FakeClock())
    assert isinstance(policy, LlmPolicy) and policy.guard is not None
    return policy


def is_probe(body: dict[str, Any]) -> bool:
    return body.get("max_tokens") == 1


def turns_sent(srv: OpenAIServer) -> list[dict[str, Any]]:
    """The chat requests of caller turns (probes left out)."""
    return [r for r in srv.requests if not is_probe(r)]


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def says(events: list[Any]) -> str:
    return " ".join(e.text for e in events if isinstance(e, Say))


def order_script(body: dict[str, Any], n: int) -> list[tuple[Any, ...]]:
    if is_probe(body):
        return [("text", "네")]
    last = body["messages"][-1]
    if last["role"] == "tool":
        return [("text", "주문하신 상품은 배송 중이에요. ")]
    if "주문" in last["content"]:
        return [("tool", "call_1", "lookup_order", {"order_id": "123456"})]
    return [("text", LLM_SAYS + " ")]


def test_a_killed_server_hands_the_next_turn_to_the_scripted_policy_and_comes_back(indexed: Database) -> None:
    with OpenAIServer(order_script) as srv:
        policy = make_policy(srv.base, indexed)
        conv = policy.open(CallInfo(call_id="k1", caller="01012345678"))
        first = list(conv.respond("주문한 거 언제 와요?", "asr"))
        assert says(first) == "주문하신 상품은 배송 중이에요."  # the model, after its lookup_order call
        port = srv.httpd.server_address[1]
    guard = policy.guard
    assert guard is not None and guard.state == CLOSED
    # Killed: the next turn is refused at once and the scripted policy answers it, from the same state (the
    # caller ID verification and the order number the model's tool call found).
    second = list(conv.respond("배송 어디쯤이에요?", "asr"))
    assert [e.name for e in second if isinstance(e, ToolUsed)] == ["lookup_order"]
    assert "CJ대한통운" in says(second) and "대전 허브 터미널" in says(second)
    assert guard.state == OPEN
    third = list(conv.respond("반품 정책이 어떻게 되나요?", "asr"))
    assert "7일 이내" in says(third)  # the scripted policy's KB answer
    state = {m[0]: m[2] for m in _breakers_samples()}
    assert state[guard.name] == 2  # exported: open
    with OpenAIServer(order_script, port=port) as again:
        assert wait_for(lambda: guard.state == HALF_OPEN), guard.state
        assert turns_sent(again) == [] and any(is_probe(r) for r in again.requests)
        fourth = list(conv.respond("고마워요, 하나만 더 물어볼게요", "asr"))
        assert says(fourth) == LLM_SAYS and guard.state == CLOSED
        [body] = turns_sent(again)
    messages = body["messages"]
    assert "본인 확인: 완료" in messages[0]["content"]
    contents = [m.get("content") or "" for m in messages]
    assert any("대전 허브 터미널" in c for c in contents) and any("7일 이내" in c for c in contents)
    # Every tool call the model sees is answered right after it, and every tool answer has its call.
    for i, m in enumerate(messages):
        for call in m.get("tool_calls") or []:
            assert messages[i + 1]["role"] == "tool" and messages[i + 1]["tool_call_id"] == call["id"]
        if m["role"] == "tool":
            assert any(c["id"] == m["tool_call_id"] for c in messages[i - 1].get("tool_calls") or [])


def _breakers_samples() -> list[tuple[str, str, float]]:
    return [(s.labels["engine"], s.name, s.value) for family in _breakers() for s in family.samples
            if family.name == "callagent_engine_breaker_state"]


def test_a_hung_server_costs_one_timeout_then_no_call_waits_for_it(indexed: Database) -> None:
    hung = {"on": False}

    def script(body: dict[str, Any], n: int) -> list[tuple[Any, ...]]:
        if hung["on"]:
            return [("hang", 3.0), ("text", "너무 늦은 답")]
        return [("text", LLM_SAYS)]

    with OpenAIServer(script) as srv:
        policy = make_policy(srv.base, indexed, timeout_s=1.0)
        guard = policy.guard
        assert guard is not None
        a = policy.open(CallInfo(call_id="h1"))
        b = policy.open(CallInfo(call_id="h2"))
        assert says(list(a.respond("안녕하세요", "asr"))) == LLM_SAYS
        hung["on"] = True
        # This turn waits out the timeout once; the scripted policy answers it.
        assert "7일 이내" in says(list(a.respond("반품 정책이 어떻게 되나요?", "asr")))
        assert guard.state == OPEN and len(turns_sent(srv)) == 2
        # The next turns, of this call and of another one, never reach the server.
        assert "새벽배송" in says(list(a.respond("새벽배송 되나요?", "asr")))
        assert "7일 이내" in says(list(b.respond("반품 정책이 어떻게 되나요?", "asr")))
        assert len(turns_sent(srv)) == 2 and "너무 늦은 답" not in str(a.state.history)
        # Probes that time out keep it open.
        assert wait_for(lambda: guard.probes >= 2)
        assert guard.state == OPEN
        hung["on"] = False
        assert wait_for(lambda: guard.state == HALF_OPEN)
        # The half-open trial meets a hung server again: open again, and the probe goes on.
        hung["on"] = True
        assert "새벽배송" in says(list(b.respond("새벽배송 되나요?", "asr")))
        assert guard.state == OPEN and len(turns_sent(srv)) == 3
        hung["on"] = False
        assert wait_for(lambda: guard.state == HALF_OPEN)
        assert says(list(b.respond("고마워요", "asr"))) == LLM_SAYS
        assert guard.state == CLOSED and guard.breaker.opened == 2


def test_only_a_down_server_counts_and_failures_to_open_is_honoured(indexed: Database) -> None:
    status = {"code": 400}

    def script(body: dict[str, Any], n: int) -> list[tuple[Any, ...]]:
        return [("status", status["code"])]

    with OpenAIServer(script) as srv:
        policy = make_policy(srv.base, indexed, failures_to_open=2, probe_every_s=60)
        guard = policy.guard
        assert guard is not None
        conv = policy.open(CallInfo(call_id="f1"))
        # A request the server refuses (400) is one bad request, not a dead server.
        assert "새벽배송" in says(list(conv.respond("새벽배송 되나요?", "asr")))
        assert guard.state == CLOSED and guard.breaker.failures == 0
        status["code"] = 503
        list(conv.respond("새벽배송 되나요?", "asr"))
        assert guard.state == CLOSED  # one of two
        list(conv.respond("반품 정책이 어떻게 되나요?", "asr"))
        assert guard.state == OPEN and len(srv.requests) == 3
        assert "7일 이내" in says(list(conv.respond("반품 정책이 어떻게 되나요?", "asr")))
        assert len(srv.requests) == 3


def test_the_summary_does_not_wait_for_an_open_breaker(indexed: Database) -> None:
    with OpenAIServer(lambda body, n: [("status", 500)]) as srv:
        policy = make_policy(srv.base, indexed, probe_every_s=60)
        conv = policy.open(CallInfo(call_id="s1"))
        list(conv.respond("반품 정책이 어떻게 되나요?", "asr"))
        assert policy.guard is not None and policy.guard.state == OPEN
        sent = len(srv.requests)
        assert conv.summary() == extractive_summary(conv.state)
        assert len(srv.requests) == sent  # the extractive summary, no request


class _Status(Exception):
    def __init__(self, status_code: int):
        super().__init__(str(status_code))
        self.status_code = status_code


@pytest.mark.parametrize(("cause", "down"), [(_Status(500), True), (_Status(503), True), (_Status(400), False),
                                             (_Status(429), False), (ConnectionRefusedError(), True),
                                             (ValueError("bad json"), False)])
def test_server_down_classification(cause: Exception, down: bool) -> None:
    try:
        raise LlmError("x") from cause
    except LlmError as exc:
        assert server_down(exc) is down
    assert server_down(LlmTimeout("deadline"))
