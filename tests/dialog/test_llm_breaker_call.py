"""A model server that hangs mid-call, through the whole stack (simulated switch, worker, controller, the
LLM policy over real HTTP): the first turn it costs is covered by fillers and answered by the scripted policy,
and the later turns neither reach the server nor wait for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dialog_llm_server import OpenAIServer

from agent.dialog.factory import create_policy
from agent.dialog.llm_guard import GUARDS
from agent.dialog.settings import parse_dialog_settings
from agent.engines.breaker import OPEN
from agent.sim import CallScript
from agent.store.db import Database
from tests.call.harness import make_stack, stored_call

LLM_TIMEOUT_S = 3.0


@pytest.fixture(autouse=True)
def _forget_guards() -> Iterator[None]:
    yield
    for guard in list(GUARDS.values()):
        guard.stop()


def test_a_hung_llm_never_leaves_the_caller_in_silence_and_later_turns_do_not_wait(
        tmp_path: Path, indexed: Database) -> None:
    def hung(body: dict[str, Any], n: int) -> list[tuple[Any, ...]]:
        return [("hang", 20.0), ("text", "너무 늦은 답")]

    with OpenAIServer(hung) as srv:
        settings = parse_dialog_settings({"policy": "llm", "pack": "ecommerce", "kb": {"index_pack_kb": False},
                                          "llm": {"model": "openai/qwen-test", "api_base": srv.base,
                                                  "timeout_s": LLM_TIMEOUT_S, "probe_every_s": 60}})
        policy = create_policy(settings, indexed)
        stack = make_stack(tmp_path, indexed, policy=policy)
        try:
            script = CallScript(steps=[
                {"wait_idle": {}}, {"say_text": "반품 정책이 어떻게 되나요?"}, {"wait_playback": {}},
                {"wait_idle": {"settle_ms": 6000, "timeout_s": 60}},
                {"say_text": "새벽배송 되나요?"}, {"wait_playback": {}},
                {"wait_idle": {"settle_ms": 6000, "timeout_s": 60}}, "hangup"])
            (log,) = stack.sim(speed=3.0).run_calls([script])
            assert not log.errors, log.errors
            call = stored_call(stack, indexed)
        finally:
            stack.stop()
        turns_sent = [r for r in srv.requests if r.get("max_tokens") != 1]
    # Only the first turn ever reached the hung server.
    assert len(turns_sent) == 1 and "반품 정책" in str(turns_sent[0]["messages"][-1])
    first_end, second_end = (u.t_last_voiced for u in log.utterances[:2])
    assert first_end is not None and second_end is not None
    heard_1 = sorted((h for h in log.heard if first_end < h.t_start < second_end), key=lambda h: h.t_start)
    edges = [first_end] + [t for h in heard_1 for t in (h.t_start, h.t_stop)]
    silences = [b - a for a, b in zip(edges[::2], edges[1::2], strict=False)]
    assert silences and max(silences) < LLM_TIMEOUT_S, silences  # fillers cover the one timeout
    heard_2 = log.first_playback_start_after(second_end)
    assert heard_2 is not None and heard_2.t_start - second_end < LLM_TIMEOUT_S  # no wait for the model
    agent = [(t["source"], t["text"]) for t in call["turns"] if t["speaker"] == "agent" and t["source"] != "greeting"]
    texts = " ".join(text for _, text in agent)
    assert "7일 이내" in texts and "새벽배송" in texts and "너무 늦은 답" not in texts
    sources = [source for source, _ in agent]
    first_answer = sources.index("policy")
    # The first turn's wait was covered by a filler; no filler after it (the later turn was answered at once).
    assert "filler" in sources[:first_answer] and "filler" not in sources[first_answer:], agent
    assert policy.guard is not None and policy.guard.state == OPEN
