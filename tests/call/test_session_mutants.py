"""The call session through the whole stack: what a hand-off tells the queue (reason and priority as channel
variables on the simulated switch, the stored call row) and what a barge-in leaves the caller hearing. Each test
fails on a planted bug the older tests let through: DTMF 0 with another queue priority, a dialog timeout stored
as a generic error, a barge-in that breaks the playback but lets the reply in progress go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from agent.dialog.policy import CallInfo, Say
from agent.sim import CallScript
from agent.store.calls import list_calls
from tests.call.harness import EchoConversation, EchoPolicy, make_stack

SPEED = 3.0


def _stored(stack, db) -> dict:
    assert stack.deps.store.flush(10)
    (call,) = list_calls(db, 1)
    return call


def test_dtmf_zero_queues_the_caller_with_priority_three(tmp_path, db):
    stack = make_stack(tmp_path, db)
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"dtmf": "0"}, {"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        uuid = log.uuid
        assert f"uuid_setvar {uuid} ai_priority 3" in log.api_commands()
        assert log.channel_vars["ai_priority"] == "3" and log.channel_vars["escalation_reason"] == "dtmf"
        call = _stored(stack, db)
        escalation = next(e for e in call["events"] if e["kind"] == "escalation")
        assert escalation["detail"]["priority"] == 3
    finally:
        stack.stop()


def test_the_dialogs_priority_reaches_the_queue_unchanged(tmp_path, db):
    """EchoPolicy escalates "상담원" with priority 2: the controller must not put its own value there."""
    stack = make_stack(tmp_path, db)
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "상담원 연결해 주세요"},
                                   {"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert log.channel_vars["ai_priority"] == "2"
        assert log.channel_vars["escalation_reason"] == "caller_requested"
    finally:
        stack.stop()


def test_a_dialog_that_outlasts_the_turn_timeout_is_recorded_as_agent_timeout(tmp_path, db):
    """The policy blocks 5 s in its thread against a 1 s turn timeout: the generator is still executing when the
    controller gives up, and closing it must not turn the timeout into `agent_error`."""
    stack = make_stack(tmp_path, db, policy=EchoPolicy(first_say_delay_s=5.0),
                       overrides={"controller": {"turn_timeout_s": 1.0}})
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "환불 가능한가요"},
                                   {"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=1.0).run_calls([script])
        assert not log.errors, log.errors
        assert log.channel_vars["escalation_reason"] == "agent_timeout"
        call = _stored(stack, db)
        assert call["escalation_reason"] == "agent_timeout" and call["end_reason"] == "transferred"
        # The caller never heard the late reply: the transfer came before the policy's first sentence.
        agent = [t["text"] for t in call["turns"] if t["speaker"] == "agent" and t["source"] == "policy"]
        assert not any("말씀이시군요" in text for text in agent)
    finally:
        stack.stop()


class PacedConversation(EchoConversation):
    """Streams its reply a sentence at a time with a pause between, as an LLM does: cancelling the turn is what
    keeps the later sentences from being spoken over a caller who has cut in."""

    LINES = ("네, 확인해 드릴게요.", "주문하신 상품은 어제 출발했어요.", "오늘 오후에 도착할 예정입니다.",
             "배송 기사님이 도착 전에 연락드릴 거예요.")

    def respond(self, text: str, source: str) -> Iterator[Any]:
        self.received.append((text, source))
        self.state.add_caller(text)
        msg = self.state.begin_agent()
        for i, line in enumerate(self.LINES if len(self.received) == 1 else self.LINES[:1]):
            if i:
                time.sleep(0.8)
            self.state.add_agent(line, msg)
            yield Say(line)


class PacedPolicy(EchoPolicy):
    def open(self, call: CallInfo) -> EchoConversation:
        conv = PacedConversation(call)
        self.conversations.append(conv)
        return conv


def test_a_barge_in_stops_the_rest_of_a_reply_still_being_written(tmp_path, db):
    stack = make_stack(tmp_path, db, policy=PacedPolicy())
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"},
                                   {"barge_in": {"text": "잠깐만요 주소를 바꾸고 싶어요", "after_ms": 400}},
                                   {"wait_idle": {"settle_ms": 2500}}, "hangup"])
        (log,) = stack.sim(speed=1.0).run_calls([script])
        assert not log.errors, log.errors
        t_break = next(c.t for c in log.commands if c.line == f"api uuid_break {log.uuid} all")
        cut = {h.headers["utt_id"] for h in log.heard if h.status == "break"}
        assert len(cut) == 1, log.heard
        after = [h for h in log.heard if h.t_start > t_break]
        # The caller hears the answer to what they said, and nothing more of the reply they cut.
        assert after and not any(h.headers.get("utt_id") in cut for h in after), after
        call = _stored(stack, db)
        first = next(t for t in call["turns"] if t["source"] == "policy")
        assert first["interrupted"] and "도착 전에 연락" not in first["heard_text"]
        assert [c for c, _ in stack.policy.conversations[0].received] == ["배송 조회 부탁드려요",
                                                                          "잠깐만요 주소를 바꾸고 싶어요"]
    finally:
        stack.stop()
