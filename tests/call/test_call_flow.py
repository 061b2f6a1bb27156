"""A whole call against the FreeSWITCH simulator: the exact ESL commands, event order and PostgreSQL rows."""

from __future__ import annotations

import pytest

from agent.sim import CallScript
from agent.store.calls import list_calls
from tests.call.harness import make_stack

SPEED = 3.0


@pytest.fixture
def stack(tmp_path, db):
    s = make_stack(tmp_path, db)
    yield s
    s.stop()


def _api(log) -> list[str]:
    return log.api_commands()


def test_full_call_greeting_turn_barge_in_dtmf_transfer(stack, db):
    script = CallScript(variables={"callagent_industry": "ecommerce"}, steps=[
        {"wait_idle": {}},
        {"say_text": "배송 조회 부탁드려요"},
        {"barge_in": {"text": "잠깐만요 주소를 바꾸고 싶어요", "after_ms": 600}},
        {"wait_idle": {"settle_ms": 500}},
        {"dtmf": "0"},
        {"expect_transfer": {"timeout_s": 20}},
    ])
    sim = stack.sim(speed=SPEED)
    (log,) = sim.run_calls([script])
    assert not log.errors, log.errors
    uuid = log.uuid

    # The session's opening, in order (freeswitch.md §1.3–§1.5, §3.1).
    lines = [c.line for c in log.commands]
    assert lines[:4] == ["connect", "myevents", lines[2], "linger 30"]
    assert lines[2].startswith("event plain PLAYBACK_START PLAYBACK_STOP DTMF")
    assert lines[4] == "sendmsg" and dict(log.commands[4].headers)["execute-app-name"] == "answer"
    greeting = dict(log.commands[5].headers)
    assert lines[5] == "sendmsg" and greeting["execute-app-name"] == "playback"
    assert greeting["execute-app-arg"].startswith("{utt_id=g1,chunk=0}/") and greeting["event-lock"] == "true"
    assert greeting["Event-UUID"] == f"{uuid}-g1-0"
    api = _api(log)
    assert api[0].startswith(f"uuid_audio_fork {uuid} start ws://127.0.0.1:") and " stereo 16k callagent '" in api[0]
    assert log.fork.connected and '"industry":"ecommerce"' in log.fork.metadata

    # The greeting played to the end; the first reply was cut by the barge-in with `uuid_break … all`.
    assert log.heard[0].headers == {"utt_id": "g1", "chunk": "0"} and log.heard[0].status == "done"
    breaks = [i for i, a in enumerate(api) if a == f"uuid_break {uuid} all"]
    assert breaks, api
    cut = [h for h in log.heard if h.status == "break"]
    assert cut and cut[0].headers["utt_id"].startswith("r")
    barge = next(u for u in log.utterances if u.barge_in)
    t_break = next(c.t for c in log.commands if c.line == f"api uuid_break {uuid} all")
    assert t_break > barge.t_first_voiced  # the break answers the caller's speech, never precedes it

    # DTMF 0: variables, the notice, then the transfer and exit (§4, §5).
    tail = api[breaks[-1]:]
    setvars = [a.split(" ", 3)[2] for a in tail if a.startswith("uuid_setvar")]
    assert setvars == ["escalation_reason", "ai_summary", "ai_call_id", "ai_priority"]
    assert f"uuid_setvar {uuid} escalation_reason dtmf" in tail
    assert tail[-1] == f"uuid_transfer {uuid} human XML ai_escalation"
    assert lines[-1] == "exit"
    assert log.transfer.ext == "human" and log.transfer.context == "ai_escalation"
    assert log.channel_vars["escalation_reason"] == "dtmf" and log.channel_vars["ai_call_id"] == uuid
    notice = [h for h in log.heard if h.t_start > log.dtmf[0][0]]
    assert notice and notice[-1].status == "done"
    assert log.ended_by == "transfer"

    assert stack.deps.store.flush(10)
    (call,) = list_calls(db, 1)
    assert call["call_id"] == uuid and call["end_reason"] == "transferred"
    assert call["escalation_reason"] == "dtmf" and call["transfer_target"] == "human XML ai_escalation"
    turns = call["turns"]
    callers = [t for t in turns if t["speaker"] == "caller"]
    assert [t["text"] for t in callers] == ["배송 조회 부탁드려요", "잠깐만요 주소를 바꾸고 싶어요"]
    # Each caller turn carries its end-of-turn decision: a sentence ending ends it well before the fallback.
    for t in callers:
        assert t["source"] == "text-injected" and 0 < t["eos_wait_ms"] <= 900
        assert t["detail"]["eot"]["reason"] in ("sentence_end", "audio_model", "silence")
    replies = [t for t in turns if t["speaker"] == "agent" and t["source"] == "policy"]
    assert replies[0]["interrupted"] and len(replies[0]["heard_text"]) < len(replies[0]["text"])
    assert not replies[1]["interrupted"] and replies[1]["heard_text"] == replies[1]["text"]
    for r in replies:
        assert r["first_audio_ms"] > 0 and r["dialog_ms"] >= 0 and r["tts_ms"] > 0
        assert r["detail"]["overhead_ms"] >= 0
    agent_sources = [t["source"] for t in turns if t["speaker"] == "agent"]
    assert agent_sources[0] == "greeting" and agent_sources[-1] == "prompt"  # the disclosure, the notice
    assert turns[0]["text"] == stack.cfg.controller.greeting
    kinds = [e["kind"] for e in call["events"]]
    assert kinds[0] == "fork_connected" and "barge_in" in kinds
    assert kinds.index("dtmf") < kinds.index("escalation")
    # The dialog history holds what the caller actually heard of the cut reply, nothing more.
    history = stack.policy.conversations[0].history
    assert [c for role, c in history if role == "assistant"] == [r["heard_text"] for r in replies if r["heard_text"]]
    assert history[-1] == ("assistant", replies[1]["text"])


def test_caller_hangup_with_linger_closes_after_hangup_complete(stack, db):
    script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "안녕하세요"}, {"wait_playback": {}}, "hangup"])
    (log,) = stack.sim(speed=SPEED).run_calls([script])
    assert not log.errors, log.errors
    assert log.ended_by == "caller" and log.closed_after_hangup_complete
    assert stack.deps.store.flush(10)
    (call,) = list_calls(db, 1)
    assert call["end_reason"] == "caller_hangup" and call["hangup_cause"] == "NORMAL_CLEARING"
    assert call["ended_at"] is not None


def test_hangup_without_linger_events_still_ends_the_record(tmp_path, db):
    s = make_stack(tmp_path, db)
    try:
        sim = s.sim(speed=SPEED, hangup_event_on_no_linger=False)
        (log,) = sim.run_calls([CallScript(steps=[{"wait_idle": {}}, "hangup"])])
        assert s.deps.store.flush(10)
        (call,) = list_calls(db, 1)
        assert call["call_id"] == log.uuid and call["end_reason"] == "caller_hangup"
    finally:
        s.stop()


def test_a_filler_covers_a_slow_tool_before_the_answer(stack, db):
    script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "환불 내역 확인해 주세요"}, {"wait_playback": {}},
                               {"wait_idle": {"settle_ms": 500}}, "hangup"])
    (log,) = stack.sim(speed=SPEED).run_calls([script])
    assert not log.errors, log.errors
    assert stack.deps.store.flush(10)
    (call,) = list_calls(db, 1)
    agent = [(t["source"], t["text"]) for t in call["turns"] if t["speaker"] == "agent" and t["source"] != "greeting"]
    assert ("filler", "잠시만요, 확인해 보겠습니다.") in agent and [s for s, _ in agent].count("policy") == 1
    heard = [h.headers["utt_id"][0] for h in log.heard]
    assert heard[:2] == ["g", "f"] and heard[2] == "r"  # greeting, filler, then the reply
