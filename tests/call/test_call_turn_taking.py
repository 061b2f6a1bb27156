"""Turn-taking through the whole stack (simulator, real worker, real controller, PostgreSQL): a backchannel does
not stop the reply, a barge-in before any audio leaves no trace of the unheard reply, keypad digits reach the
dialog, and the AI stops listening before every transfer."""

from __future__ import annotations

import pytest

from agent.sim import CallScript
from tests.call.harness import EchoPolicy, make_stack, stored_call

SPEED = 3.0


@pytest.fixture
def stack(tmp_path, db):
    s = make_stack(tmp_path, db)
    yield s
    s.stop()


def test_a_backchannel_during_the_reply_resumes_it_and_the_history_keeps_it_whole(stack, db):
    script = CallScript(steps=[
        {"wait_idle": {}},
        {"say_text": "배송 조회 부탁드려요"},
        {"barge_in": {"text": "네", "after_ms": 800}},
        {"wait_idle": {"settle_ms": 500}},
        "hangup",
    ])
    (log,) = stack.sim(speed=SPEED).run_calls([script])
    assert not log.errors, log.errors
    api = log.api_commands()
    pauses = [a for a in api if a == f"uuid_fileman {log.uuid} pause"]
    assert len(pauses) == 2, api  # paused on the onset, then the same toggle resumed it
    assert f"uuid_break {log.uuid} all" not in api
    call = stored_call(stack, db)
    reply = next(t for t in call["turns"] if t["source"] == "policy")
    assert not reply["interrupted"] and reply["heard_text"] == reply["text"]
    assert [t["text"] for t in call["turns"] if t["speaker"] == "caller"] == ["배송 조회 부탁드려요"]
    kinds = [e["kind"] for e in call["events"]]
    assert "barge_in_paused" in kinds and "barge_in_resumed" in kinds and "barge_in" not in kinds
    conv = stack.policy.conversations[0]
    assert conv.history == [("user", "배송 조회 부탁드려요"), ("assistant", reply["text"])]
    # What the caller heard: every chunk of the reply played to the end.
    assert all(h.status == "done" for h in log.heard if h.headers.get("utt_id", "").startswith("r"))


def test_barge_in_before_the_first_chunk_leaves_nothing_of_that_reply(tmp_path, db):
    stack = make_stack(tmp_path, db, policy=EchoPolicy(first_say_delay_s=2.5),
                       overrides={"controller": {"filler_after_s": 5.0}})
    try:
        script = CallScript(steps=[
            {"wait_idle": {}},
            {"say_text": "배송 조회 부탁드려요"},
            {"say_text": "아 잠깐만요 주소를 바꾸고 싶어요 지금 바로요"},
            {"wait_idle": {"settle_ms": 3000}},
            "hangup",
        ])
        (log,) = stack.sim(speed=1.0).run_calls([script])
        assert not log.errors, log.errors
        call = stored_call(stack, db)
        conv = stack.policy.conversations[0]
        texts = [c for c, _ in conv.received]
        assert texts == ["배송 조회 부탁드려요", "아 잠깐만요 주소를 바꾸고 싶어요 지금 바로요"]
        # The first reply was never heard: its turn left only the caller's words, and its generator, still
        # sleeping in a pool thread when it was cancelled, wrote nothing after the second turn.
        second = [t for t in call["turns"] if t["source"] == "policy"]
        assert len(second) == 1 and not second[0]["interrupted"]
        assert conv.history == [("user", texts[0]), ("user", texts[1]), ("assistant", second[0]["text"])]
        played = {h.headers.get("utt_id") for h in log.heard}
        assert second[0]["detail"]["utt_id"] in played and len([u for u in played if u.startswith("r")]) == 1
    finally:
        stack.stop()


def test_keypad_digits_reach_the_dialog_as_one_turn(stack, db):
    script = CallScript(steps=[
        {"wait_idle": {}}, {"dtmf": "123456#"}, {"wait_idle": {"settle_ms": 500}}, "hangup",
    ])
    (log,) = stack.sim(speed=SPEED).run_calls([script])
    assert not log.errors, log.errors
    assert stack.policy.conversations[0].received == [("123456", "dtmf")]
    call = stored_call(stack, db)
    caller = [t for t in call["turns"] if t["speaker"] == "caller"]
    assert [t["source"] for t in caller] == ["dtmf"]
    assert any(t["source"] == "policy" for t in call["turns"])


def test_the_fork_is_stopped_before_the_transfer(stack, db):
    script = CallScript(steps=[{"wait_idle": {}}, {"dtmf": "0"}, {"expect_transfer": {"timeout_s": 20}}])
    (log,) = stack.sim(speed=SPEED).run_calls([script])
    assert not log.errors, log.errors
    api = log.api_commands()
    stop = api.index(f"uuid_audio_fork {log.uuid} stop callagent")
    assert stop < api.index(f"uuid_transfer {log.uuid} human XML ai_escalation")
    assert log.bugs_at_transfer == []  # nothing of the AI is still listening when the human queue starts
    assert log.fork_bytes_after_transfer == 0


def test_a_summary_that_times_out_does_not_stop_the_transfer(tmp_path, db):
    stack = make_stack(tmp_path, db, policy=EchoPolicy(summary_delay_s=30.0))
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"dtmf": "0"}, {"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert f"uuid_setvar {log.uuid} ai_summary -" in log.api_commands()
        call = stored_call(stack, db)
        assert call["end_reason"] == "transferred" and call["escalation_reason"] == "dtmf"
    finally:
        stack.stop()


@pytest.mark.parametrize("gain_db,delay_ms", [(-6, 120), (-12, 40), (-20, 250)])
def test_echo_of_the_agents_own_voice_never_breaks_the_reply(stack, db, gain_db, delay_ms):
    script = CallScript(echo={"delay_ms": delay_ms, "gain_db": gain_db}, steps=[
        {"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"}, {"wait_playback": {}},
        {"wait_idle": {"settle_ms": 500}}, "hangup",
    ])
    (log,) = stack.sim(speed=SPEED).run_calls([script])
    assert not log.errors, log.errors
    api = log.api_commands()
    assert not any(a.startswith(("uuid_break", "uuid_fileman")) for a in api), api
    call = stored_call(stack, db)
    reply = next(t for t in call["turns"] if t["source"] == "policy")
    assert not reply["interrupted"] and reply["heard_text"] == reply["text"]
    assert [t["speaker"] for t in call["turns"]].count("caller") == 1  # the echo was never taken for a turn
