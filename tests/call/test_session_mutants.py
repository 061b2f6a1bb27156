"""What a hand-off tells the queue, checked through the whole stack: the reason and priority the caller is queued
with (channel variables set on the simulated switch, the stored call row). Each test fails on a planted bug that
the older tests let through: DTMF 0 with another queue priority, a dialog timeout stored as a generic error."""

from __future__ import annotations

from agent.sim import CallScript
from agent.store.calls import list_calls
from tests.call.harness import EchoPolicy, make_stack

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
