"""Each escalation rule of the real scripted policy, through the controller: setvar → transfer on the simulated
switch, and the reason in PostgreSQL. (DTMF 0 is covered in test_call_flow, faults in test_call_faults.)"""

from __future__ import annotations

import pytest

from agent.dialog.factory import create_policy
from agent.dialog.settings import parse_dialog_settings
from agent.sim import CallScript
from agent.store.calls import list_calls
from tests.call.harness import make_stack

SPEED = 4.0


class SteppingClock:
    """Dialog time that jumps 10 minutes per caller turn, so the 15-minute rule fires on the second turn."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 300.0  # read twice per turn
        return self.now


CASES = {
    "caller_requested": ["상담원 연결해 주세요"],
    "sensitive_topic": ["변호사랑 소송 준비하고 있어요"],
    # One angry sentence is not a trend: the rule waits for sustained negative turns.
    "negative_sentiment": ["진짜 최악이네요 너무 짜증나요", "왜 이렇게 일을 못해요 정말 화나네요",
                           "최악이에요 진짜 너무 짜증나요"],
    "repeated_failure": ["블라블라", "음", "어"],
    "call_too_long": ["배송비 얼마예요?", "새벽배송 되나요?", "포인트는요?"],
}


@pytest.mark.parametrize("reason", list(CASES))
def test_rule_transfers_the_call_with_its_reason(reason, tmp_path, db):
    clock = SteppingClock() if reason == "call_too_long" else None
    policy = create_policy(parse_dialog_settings({}), db, **({"clock": clock} if clock else {}))
    stack = make_stack(tmp_path, db, policy=policy)
    try:
        steps: list = [{"wait_idle": {}}]
        for line in CASES[reason]:
            steps += [{"say_text": line}, {"wait_idle": {"settle_ms": 400}}]
        script = CallScript(variables={"callagent_industry": "ecommerce"},
                            steps=[*steps[:-1], {"expect_transfer": {"timeout_s": 30}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert log.channel_vars["escalation_reason"] == reason
        assert log.channel_vars["ai_summary"] not in ("", "-")
        assert log.api_commands()[-1] == f"uuid_transfer {log.uuid} human XML ai_escalation"
        assert log.bugs_at_transfer == [] and log.fork_bytes_after_transfer == 0  # the AI stopped listening
        assert stack.deps.store.flush(10)
        (call,) = list_calls(db, 1)
        assert call["escalation_reason"] == reason and call["end_reason"] == "transferred"
        assert call["summary"] == log.channel_vars["ai_summary"]
    finally:
        stack.stop()
