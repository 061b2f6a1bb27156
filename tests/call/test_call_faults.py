"""Faults never leave the caller in dead air and never lose the call record."""

from __future__ import annotations

import socket
import time

from agent.engines.asr.fake import FakeAsr
from agent.sim import CallScript
from agent.store.calls import list_calls
from tests.call.harness import make_stack

SPEED = 3.0


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_worker_unreachable_means_apology_then_human(tmp_path, db):
    stack = make_stack(tmp_path, db, worker=False, fork_url=f"ws://127.0.0.1:{_closed_port()}")
    try:
        script = CallScript(steps=[{"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert log.fork.connect_failed  # mod_audio_fork::connect_failed reached the agent
        api = log.api_commands()
        assert f"uuid_setvar {log.uuid} escalation_reason worker_unavailable" in api
        assert api[-1] == f"uuid_transfer {log.uuid} human XML ai_escalation"
        assert log.bugs_at_transfer == []  # the fork that never connected is stopped too
        # The caller heard the greeting and then the apology: audio all the way to the human queue.
        assert len(log.heard) >= 2 and log.heard[-1].status == "done"
        assert log.heard[-1].t_start < log.transfer.t
        assert stack.deps.store.flush(10)
        (call,) = list_calls(db, 1)
        assert call["escalation_reason"] == "worker_unavailable" and call["end_reason"] == "transferred"
        assert "fork_failed" in [e["kind"] for e in call["events"]]
    finally:
        stack.stop()


def test_asr_failures_reprompt_then_hand_off(tmp_path, db):
    asr = FakeAsr(fail="model crashed", retryable=True)
    stack = make_stack(tmp_path, db, asr=asr, overrides={"worker": {"allow_text_injection": False}})
    try:
        script = CallScript(steps=[
            {"wait_idle": {}}, {"say_text": "첫 번째 말"}, {"wait_idle": {"settle_ms": 500}},
            {"say_text": "두 번째 말"}, {"expect_transfer": {"timeout_s": 20}},
        ])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert f"uuid_setvar {log.uuid} escalation_reason asr_failed" in log.api_commands()
        assert stack.deps.store.flush(10)
        (call,) = list_calls(db, 1)
        kinds = [e["kind"] for e in call["events"]]
        assert kinds.count("asr_error") == 2
        prompts = [t["text"] for t in call["turns"] if t["speaker"] == "agent" and t["source"] != "greeting"]
        assert prompts[0].startswith("죄송합니다, 잘 듣지 못했습니다")  # a re-prompt, not silence
    finally:
        stack.stop()


def test_garbage_on_the_esl_socket_does_not_hurt_the_next_call(tmp_path, db):
    stack = make_stack(tmp_path, db)
    try:
        with socket.create_connection(("127.0.0.1", stack.controller.port), timeout=5) as bad:
            assert bad.recv(100).startswith(b"connect")
            bad.sendall(b"\x00\xff garbage without any colon\n\n")
            bad.settimeout(5)
            assert bad.recv(100) == b""  # the controller dropped the connection
        (log,) = stack.sim(speed=SPEED).run_calls([CallScript(steps=[{"wait_idle": {}}, "hangup"])])
        assert not log.errors and log.heard[0].status == "done"
    finally:
        stack.stop()


def test_missing_spool_directory_is_created(tmp_path, db):
    spool = tmp_path / "not" / "there" / "spool"
    stack = make_stack(tmp_path, db, overrides={"tts": {"spool_dir": str(spool)}})
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "배송 조회요"}, {"wait_idle": {}}, "hangup"])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        replies = [h for h in log.heard if h.headers["utt_id"].startswith("r")]
        assert replies and all(h.path.startswith(str(spool)) and h.status == "done" for h in replies)
    finally:
        stack.stop()


def test_over_capacity_refuses_the_connection_so_the_dialplan_moves_on(tmp_path, db):
    stack = make_stack(tmp_path, db, overrides={"controller": {"max_calls": 1}})
    try:
        long_call = CallScript(steps=[{"wait_idle": {}}, {"sleep": 3}, "hangup"])
        second = CallScript(steps=[{"sleep": 1}])
        sim = stack.sim(speed=SPEED)
        first_log, second_log = sim.run_calls([long_call, second], stagger_s=0.5)
        assert not first_log.errors
        # Refused, not `connect`+`exit`: FreeSWITCH tries the next `socket` host, then the actions after it.
        assert second_log.commands == [] and second_log.ended_by == "agent_unreachable"
        assert second_log.fell_through
        assert stack.controller.controller.rejected == 1
    finally:
        time.sleep(0.1)
        stack.stop()


def test_silent_caller_is_reprompted_twice_differently_then_handed_to_a_human(tmp_path, db):
    stack = make_stack(tmp_path, db, overrides={"controller": {"no_input_timeout_s": 1.5}})
    try:
        (log,) = stack.sim(speed=SPEED).run_calls([CallScript(steps=[{"expect_transfer": {"timeout_s": 30}}])])
        assert not log.errors, log.errors
        assert f"uuid_setvar {log.uuid} escalation_reason no_input" in log.api_commands()
        assert stack.deps.store.flush(10)
        (call,) = list_calls(db, 1)
        agent_texts = [t["text"] for t in call["turns"] if t["speaker"] == "agent" and t["source"] != "greeting"]
        prompts = stack.cfg.controller.no_input_prompts
        assert len(set(prompts)) == 2 and agent_texts[:2] == list(prompts)  # two different prompts, in order
        assert [e["detail"]["give_up"] for e in call["events"] if e["kind"] == "no_input"] == [False, False, True]
    finally:
        stack.stop()


def test_silent_caller_can_be_said_goodbye_to_instead(tmp_path, db):
    stack = make_stack(tmp_path, db, overrides={"controller": {"no_input_timeout_s": 1.0,
                                                               "no_input_prompts": ["여보세요?"],
                                                               "no_input_action": "hangup"}})
    try:
        (log,) = stack.sim(speed=SPEED).run_calls([CallScript(steps=[{"sleep": 30}])])
        assert not log.errors, log.errors
        api = log.api_commands()
        assert api[-1] == f"uuid_kill {log.uuid} NORMAL_CLEARING" and not any("uuid_transfer" in a for a in api)
        assert stack.deps.store.flush(10)
        (call,) = list_calls(db, 1)
        agent = [t["text"] for t in call["turns"] if t["speaker"] == "agent" and t["source"] != "greeting"]
        assert agent[-2:] == ["여보세요?", stack.cfg.controller.goodbye]
        goodbye = [h for h in log.heard if h.status == "done"][-1]
        assert goodbye.t_start < log.t_end  # the goodbye played to the end before the hang-up
        assert call["end_reason"] == "agent_hangup"
    finally:
        stack.stop()


def test_a_connection_reusing_a_finished_calls_id_cannot_rewrite_its_record(tmp_path, db):
    stack = make_stack(tmp_path, db)
    try:
        (log,) = stack.sim(speed=SPEED).run_calls([CallScript(steps=[{"wait_idle": {}}, "hangup"])])
        assert not log.errors, log.errors
        assert stack.deps.store.flush(10)
        (before,) = list_calls(db, 1)
        # Any local process can dial the ESL port and claim a Unique-ID (freeswitch.md §1.3 connect reply).
        with socket.create_connection(("127.0.0.1", stack.controller.port), timeout=5) as sock:
            f = sock.makefile("rb")
            assert f.readline() == b"connect\n" and f.readline() == b"\n"
            sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK\nSocket-Mode: async\nControl: full\n"
                         b"Unique-ID: " + log.uuid.encode() + b"\nCaller-Caller-ID-Number: 0109999\n"
                         b"variable_callagent_industry: banking\n\n")
            assert f.readline() == b"exit\n"  # nothing else: no events, no answer, no record
        assert stack.deps.store.flush(10)
        (after,) = list_calls(db, 1)
        assert after["caller"] == before["caller"] and after["industry"] == before["industry"]
        assert after["ended_at"] == before["ended_at"] and after["turns"] == before["turns"]
    finally:
        stack.stop()
