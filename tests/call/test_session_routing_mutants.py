"""The call session on a fake ESL socket, event by event (no sockets, no worker, no database): the commands of
the set-up in their order, the routing of each FreeSWITCH event, the keypad, a barge-in carried out, the hand-off
and the hang-up, how the call's end is stored, and what the teardown releases. A whole simulated call per test
would take seconds; these take milliseconds."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
from gevent.queue import Queue

from agent.call.session import DTMF_EVENTS_PER_S, CallDeps, CallSession
from agent.call.turns.barge_in import Action
from agent.config import parse_config
from agent.esl.codec import Event, Message
from agent.esl.connection import Closed, Disconnect
from agent.esl.errors import CommandFailed
from tests.call.fast_fakes import UUID, FakeConn, FakePrompts, FakeStore, SpyVoice
from tests.call.harness import EchoConversation

CONNECT = {"Unique-ID": UUID, "Caller-Caller-ID-Number": "01012345678", "Caller-Destination-Number": "1588",
           "Channel-Read-Codec-Rate": "8000", "variable_callagent_industry": "banking",
           "variable_callagent_hotwords": "적금,이체", "Reply-Text": "+OK"}
GREETING = "안녕하세요, 인공지능 상담원입니다. 통화는 녹음됩니다."


class EslConn(FakeConn):
    """The outbound socket as the session uses it: `connect` answers the channel dump, events come from a queue."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.events: Queue = Queue()

    def send(self, command: str, headers: Any = None, body: Any = None, timeout: Any = None) -> Message:
        self.sent.append(("command", command))
        return Message(dict(CONNECT))

    def command(self, line: str, headers: Any = None, body: str | None = None) -> str:
        reply = super().command(line, headers, body)
        if line == "exit":  # FreeSWITCH says goodbye and closes (freeswitch.md §1.7)
            self.events.put(Disconnect("disconnect"))
            self.events.put(Closed("eof"))
        return reply

    def close(self) -> None:
        if not self.closed:
            self.events.put(Closed("closed by agent"))
        super().close()

    def event(self, name: str, **headers: str) -> None:
        self.events.put(Event({"Event-Name": name, "Unique-ID": UUID, **headers}))


class Conv(EchoConversation):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0
        self.fail_close = False

    def close(self) -> None:
        self.closed += 1
        if self.fail_close:
            raise RuntimeError("close failed")


class Policy:
    name = "test"

    def __init__(self) -> None:
        self.conv = Conv()
        self.opened: list[Any] = []

    def open(self, call: Any) -> Conv:
        self.opened.append(call)
        return self.conv


class Spool:
    def __init__(self) -> None:
        self.cleaned: list[str] = []

    def cleanup(self, call_id: str) -> None:
        self.cleaned.append(call_id)


class Speaker:
    def __init__(self) -> None:
        self.spool = Spool()

    def speak(self, call_id: str, utt_id: str, text: str, rate: int) -> Any:
        yield SimpleNamespace(text=text, path=f"/spool/{utt_id}.wav", duration_s=1.0)


class Store(FakeStore):
    def __init__(self, finished: Any = False) -> None:
        super().__init__()
        self.finished = finished

    def is_finished(self, call_id: str) -> bool:
        if isinstance(self.finished, BaseException):
            raise self.finished
        return self.finished


class Stats:
    def __init__(self) -> None:
        self.barge_ins = 0
        self.escalations: Counter[str] = Counter()
        self.turns: list[Any] = []

    def record_turn(self, overhead_ms: float, first_audio_ms: float | None) -> None:
        self.turns.append((overhead_ms, first_audio_ms))


@pytest.fixture(autouse=True)
def played_out(monkeypatch):
    """Waits for a playback's end return at once, the audio reported played (no PLAYBACK events here)."""
    monkeypatch.setattr("agent.call.session.Voice", SpyVoice)


def make(tmp_path, *, store: Store | None = None, conn: EslConn | None = None, seal: Any = None,
         prompt_s: float = 0.5, **controller: Any) -> CallSession:
    cfg = parse_config({"controller": {"fork_secret_env": "", "no_input_timeout_s": 600, **controller}})
    deps = CallDeps(cfg=cfg, policy=Policy(), speaker=Speaker(), prompts=FakePrompts(tmp_path, prompt_s),  # type: ignore[arg-type]
                    store=store or Store(), stats=Stats(), seal_recording=seal)  # type: ignore[arg-type]
    return CallSession(conn or EslConn(), deps)  # type: ignore[arg-type]


def started(tmp_path, **kw: Any) -> CallSession:
    s = make(tmp_path, **kw)
    assert s._setup()
    return s


def _logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.call.session"]


def _wait(cond, limit: float = 5.0) -> None:
    with gevent.Timeout(limit):
        while not cond():
            gevent.sleep(0.01)


# set-up -------------------------------------------------------------------------------------------------


def test_the_set_up_in_order_on_the_wire(tmp_path):
    s = started(tmp_path, recording_dir=str(tmp_path / "rec"), inband_dtmf=True, greeting=GREETING)
    lines = s.conn.lines()
    assert lines[:4] == ["connect", "myevents", lines[2], "linger 30"]
    assert lines[2].startswith("event plain PLAYBACK_START ") and "CUSTOM mod_audio_fork::connect" in lines[2]
    assert lines[4] == "sendmsg answer"
    assert lines[5].startswith("sendmsg playback {utt_id=")
    assert lines[6:9] == ["sendmsg start_dtmf", f"api uuid_setvar {UUID} RECORD_STEREO true",
                          f"api uuid_record {UUID} start {tmp_path / 'rec' / UUID}.wav"]
    assert lines[9].startswith(f"api uuid_audio_fork {UUID} start ws://127.0.0.1:8090/{UUID} stereo 16k callagent")
    assert '"hotwords":["적금","이체"]' in lines[9] and '"industry":"banking"' in lines[9]
    assert s.state == "active" and s.uuid == UUID
    (call,) = s.deps.policy.opened
    assert (call.call_id, call.caller, call.destination, call.industry) == (UUID, "01012345678", "1588", "banking")
    assert call.variables["callagent_hotwords"] == "적금,이체"
    starts = [f for op, f in s.deps.store.ops if op == "call_start"]
    assert len(starts) == 2 and starts[1]["answered_at"]
    assert starts[0]["variables"]["callagent_controller"] == "127.0.0.1:8084"
    (greeting,) = s.deps.store.turns()
    assert greeting["text"] == GREETING and greeting["source"] == "greeting" and greeting["seq"] == 1
    (handle,) = s.voice.playout.handles.values()
    assert handle.kind == "greeting" and not handle.interruptible
    assert s.deps.prompts.asked == [GREETING]
    s.group.kill()


def test_the_dialogs_own_greeting_wins_and_nothing_optional_is_sent(tmp_path):
    s = make(tmp_path)
    s.deps.policy.conv.greeting = lambda: "은행입니다."  # type: ignore[method-assign]
    s._setup()
    assert s.deps.prompts.asked == ["은행입니다."]
    assert not any(x.startswith(("sendmsg start_dtmf", "api uuid_record")) for x in s.conn.lines())
    assert s.recorder is None
    s.group.kill()


def test_a_connection_for_a_finished_call_gets_exit_and_no_record(tmp_path):
    s = make(tmp_path, store=Store(finished=True))
    s.run()
    assert s.conn.lines() == ["connect", "exit"]
    assert s.deps.store.ops == [] and s.conn.closed and s.deps.speaker.spool.cleaned == [UUID]


def test_a_store_that_cannot_say_whether_the_call_finished_does_not_block_it(tmp_path):
    s = make(tmp_path, store=Store(finished=RuntimeError("db down")))
    assert s._setup() and s.state == "active"
    s.group.kill()
    s = make(tmp_path, store=FakeStore())  # type: ignore[arg-type]  # a store that cannot tell
    assert s._setup()
    s.group.kill()


def test_a_fork_freeswitch_refuses_hands_the_caller_to_a_human(tmp_path):
    s = started(tmp_path, conn=EslConn(api_replies={"uuid_audio_fork": "-ERR Operation Failed\n"}))
    assert s.deps.store.events("fork_failed")[0]["detail"] == {"reason": "fork start refused: -ERR Operation Failed"}
    assert s.state in ("escalating", "transferred")
    _wait(lambda: "exit" in s.conn.lines())
    assert s.deps.stats.escalations == Counter({"worker_unavailable": 1})
    assert f"api uuid_setvar {UUID} escalation_reason worker_unavailable" in s.conn.lines()
    assert s.state == "transferred"
    assert s.deps.cfg.controller.apology in s.deps.prompts.asked


# events -------------------------------------------------------------------------------------------------


def test_a_hangup_complete_ends_the_call_and_closes_the_socket(tmp_path):
    s = make(tmp_path)
    g = gevent.spawn(s.run)
    _wait(lambda: s.state == "active")
    s.conn.event("CHANNEL_HANGUP_COMPLETE", **{"Hangup-Cause": "NORMAL_CLEARING"})
    g.join(5)
    assert g.dead and s.state == "gone" and s.conn.closed
    (end,) = s.deps.store.ends()
    assert end["end_reason"] == "caller_hangup" and end["hangup_cause"] == "NORMAL_CLEARING"
    assert s.deps.policy.conv.closed == 1 and s.deps.speaker.spool.cleaned == [UUID]
    assert not any("uuid_audio_fork" in x and " stop " in x for x in s.conn.lines())  # the channel is gone


def test_a_hangup_keeps_its_cause_when_hangup_complete_has_none(tmp_path):
    s = started(tmp_path)
    s._on_event(Event({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": UUID, "Hangup-Cause": "USER_BUSY"}))
    assert s.state == "gone" and not s.conn.closed
    s._on_event(Event({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": UUID}))
    assert s.hangup_cause == "USER_BUSY" and s.conn.closed
    (end,) = s.deps.store.ends()
    assert end["hangup_cause"] == "USER_BUSY" and end["end_reason"] == "caller_hangup"


def test_a_hangup_without_a_cause_stores_none(tmp_path):
    s = started(tmp_path)
    s._on_event(Event({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": UUID, "Hangup-Cause": ""}))
    assert s.deps.store.ends()[0]["hangup_cause"] is None


@pytest.mark.parametrize("state,reason", [("ending", "agent_hangup"), ("transferred", "transferred"),
                                          ("escalating", "caller_hangup"), ("active", "caller_hangup")])
def test_how_the_end_is_stored_depends_on_what_the_call_was_doing(tmp_path, state, reason):
    s = started(tmp_path)
    s.state = state
    s._gone("hangup")
    s._gone("hangup again")
    assert [e["end_reason"] for e in s.deps.store.ends()] == [reason]


def test_events_of_another_channel_are_ignored(tmp_path):
    s = started(tmp_path)
    s._on_event(Event({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": "stale-uuid"}))
    s._on_event(Event({"Event-Name": "DTMF", "Unique-ID": "stale-uuid", "DTMF-Digit": "0"}))
    assert s.state == "active" and s.deps.store.events("dtmf") == []
    s.group.kill()


def test_a_linger_notice_keeps_the_call_and_a_disconnect_ends_it(tmp_path):
    s = started(tmp_path)
    s.conn.events.put(Disconnect("linger"))
    s.conn.events.put(Closed("eof"))
    s._event_loop()
    assert s.state == "active"
    s.conn.events.put(Disconnect("disconnect"))
    s.conn.events.put(Closed("eof"))
    s._event_loop()
    assert s.state == "gone" and s.deps.store.ends()[0]["end_reason"] == "caller_hangup"


def test_an_esl_error_while_handling_an_event_does_not_end_the_loop(tmp_path, caplog):
    s = started(tmp_path)
    s.voice.on_playback = lambda *a: (_ for _ in ()).throw(CommandFailed("x", "-ERR"))  # type: ignore[method-assign]
    s.conn.event("PLAYBACK_START", utt_id="x", chunk="0")
    s.conn.event("CHANNEL_HANGUP", **{"Hangup-Cause": "NORMAL_CLEARING"})
    s.conn.events.put(Closed("eof"))
    s._event_loop()
    assert s.state == "gone"
    assert f"call {UUID}: ESL error while handling PLAYBACK_START: ['x'] failed: -ERR" in _logged(caplog)


def test_playback_events_reach_the_voice(tmp_path):
    s = started(tmp_path)
    (h,) = s.voice.playout.handles.values()
    s._on_event(Event({"Event-Name": "PLAYBACK_START", "Unique-ID": UUID, "utt_id": h.utt_id, "chunk": "0"}))
    assert h.chunks[0].playing
    s._on_event(Event({"Event-Name": "PLAYBACK_STOP", "Unique-ID": UUID, "utt_id": h.utt_id, "chunk": "0",
                       "Playback-Status": "done"}))
    assert h.chunks[0].status == "done"
    s.group.kill()


def test_worker_messages_reach_the_fork_router(tmp_path):
    s = started(tmp_path)
    s._on_event(Event({"Event-Name": "CUSTOM", "Unique-ID": UUID, "Event-Subclass": "mod_audio_fork::connect"}))
    assert s.fork.connected and s.deps.store.kinds()[-1] == "fork_connected"
    s._on_event(Event({"Event-Name": "CUSTOM", "Unique-ID": UUID, "Event-Subclass": "mod_audio_fork::json"},
                      body='{"event": "speech_started", "utterance": 1}'))
    assert s.fork.caller_speaking
    s.group.kill()


def _not_found(s: CallSession, handle) -> None:
    s._on_event(Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Unique-ID": UUID, "Application": "playback",
                       "Application-UUID": s.voice.app_uuid(handle.utt_id, 0),
                       "Application-Response": "FILE NOT FOUND"}))


def test_a_greeting_that_cannot_play_hands_off_at_once(tmp_path):
    s = started(tmp_path)
    (h,) = s.voice.playout.handles.values()
    _not_found(s, h)
    assert s.state == "escalating" and s.deps.stats.escalations == Counter({"playback_failed": 1})
    _wait(lambda: "exit" in s.conn.lines())
    cfg = s.deps.cfg.controller
    assert cfg.apology in s.deps.prompts.asked and cfg.transfer_notice not in s.deps.prompts.asked  # a fault


def test_a_reply_chunk_that_cannot_play_hands_off_only_the_second_time(tmp_path):
    s = started(tmp_path)
    (greeting,) = s.voice.playout.handles.values()
    s.voice.break_all()
    for n in (1, 2):
        h = s.voice.new_handle("reply")
        s.voice.queue(h, "네", f"/spool/{n}.wav", 1.0)
        _not_found(s, h)
        assert s.state == ("active" if n == 1 else "escalating")
    _wait(lambda: "exit" in s.conn.lines())


def test_a_failed_playback_after_the_call_left_changes_nothing(tmp_path):
    s = started(tmp_path)
    s.state = "ending"
    (h,) = s.voice.playout.handles.values()
    _not_found(s, h)
    assert s.state == "ending"
    s.group.kill()


def test_other_execute_completions_are_not_failures(tmp_path):
    s = started(tmp_path)
    s._on_event(Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Unique-ID": UUID, "Application": "answer"}))
    assert s.state == "active"
    s.group.kill()


# the keypad ---------------------------------------------------------------------------------------------


def test_the_human_digit_queues_the_caller_with_priority_three(tmp_path):
    s = started(tmp_path)
    s._on_dtmf("0")
    assert s.state == "escalating"
    _wait(lambda: "exit" in s.conn.lines())
    assert f"api uuid_setvar {UUID} ai_priority 3" in s.conn.lines()
    assert f"api uuid_setvar {UUID} escalation_reason dtmf" in s.conn.lines()


def test_typed_digits_become_one_turn_with_the_recording_masked_meanwhile(tmp_path):
    s = started(tmp_path, recording_dir=str(tmp_path / "rec"))
    for d in "120":  # a 0 after the first key is a digit, not the human digit
        s._on_dtmf(d)
    assert s.state == "active"
    rec = f"{tmp_path / 'rec' / UUID}.wav"
    assert s.conn.lines().count(f"api uuid_record {UUID} mask {rec}") == 1
    s._on_dtmf("#")
    assert f"api uuid_record {UUID} unmask {rec}" in s.conn.lines()
    assert s.turn is not None and s.turn.data == {"text": "120", "source": "dtmf"}
    _wait(lambda: s.deps.policy.conv.received)
    assert s.deps.policy.conv.received == [("120", "dtmf")]
    s.group.kill()


def test_keys_after_the_call_left_the_agent_are_recorded_only(tmp_path):
    s = started(tmp_path)
    s.state = "escalating"
    s._on_dtmf("0")
    s._on_dtmf("5")
    assert s.state == "escalating" and not s.keypad.typing
    s.group.kill()


def test_a_keypad_flood_is_counted_not_stored_key_by_key(tmp_path):
    s = started(tmp_path)
    s.clock = lambda: 500.2  # type: ignore[method-assign]
    for _ in range(DTMF_EVENTS_PER_S + 5):
        s._on_dtmf("*")
    s.clock = lambda: 501.0  # type: ignore[method-assign]
    s._on_dtmf("*")
    s.deps.store.ops.clear()
    s.record.event("no_input")  # releases the held keys
    assert len(s.deps.store.events("dtmf")) == 0
    keys = [f for op, f in s.deps.store.ops if op == "event" and f["kind"] == "dtmf"]
    assert keys == []
    s.group.kill()


def test_a_second_of_keys_stores_at_most_the_limit(tmp_path):
    s = started(tmp_path)
    stored: list[str] = []
    s.record.event = lambda kind, **d: stored.append(d["digit"]) if kind == "dtmf" else None  # type: ignore
    s.clock = lambda: 500.2  # type: ignore[method-assign]
    for _ in range(DTMF_EVENTS_PER_S + 5):
        s._on_dtmf("*")
    assert len(stored) == DTMF_EVENTS_PER_S
    s.clock = lambda: 501.0  # type: ignore[method-assign]
    s._on_dtmf("#")
    assert len(stored) == DTMF_EVENTS_PER_S + 1  # a new second, a new allowance
    s.group.kill()


# barge-in, hand-off, hang-up ------------------------------------------------------------------------------


def test_resume_toggles_the_pause_back_and_is_recorded(tmp_path):
    s = started(tmp_path)
    s.voice.paused = True
    s.act(Action.RESUME, "speech_dropped", voiced_ms=120.0)
    assert s.conn.lines()[-1] == f"api uuid_fileman {UUID} pause"
    assert s.deps.store.events("barge_in_resumed")[0]["detail"] == {"why": "speech_dropped", "voiced_ms": 120.0}
    assert s.deps.stats.barge_ins == 0
    s.group.kill()


def test_a_break_cancels_the_turn_flushes_and_is_counted(tmp_path):
    s = started(tmp_path)
    s.voice.break_all()
    s.turn = s.start_turn({"text": "배송 조회요"})
    s.act(Action.BREAK, "voiced", voiced_ms=600.0)
    assert s.turn.cancelled and s.conn.lines()[-1] == f"api uuid_break {UUID} all"
    detail = s.deps.store.events("barge_in")[0]["detail"]
    assert detail["why"] == "voiced" and detail["voiced_ms"] == 600.0 and detail["break_ms"] >= 0
    assert s.deps.stats.barge_ins == 1
    s.group.kill()


def test_a_filler_cut_by_the_caller_leaves_a_turn_without_audio_alone(tmp_path):
    s = started(tmp_path)
    s.voice.break_all()
    s.turn = s.start_turn({"text": "상담원"})  # escalates without saying anything
    _wait(lambda: s.turn.done)
    s.state = "active"
    s.voice.say_prompt("잠시만요", kind="filler")
    s.turn.cancelled = False
    s.act(Action.BREAK, "words")
    assert not s.turn.cancelled and s.conn.lines()[-1] == f"api uuid_break {UUID} all"
    s.group.kill()


def test_a_break_over_a_filler_and_a_turn_with_audio_cancels_it(tmp_path):
    s = started(tmp_path)
    s.voice.break_all()
    s.deps.policy.conv.first_say_delay_s = 2.0  # the turn is still thinking when the caller cuts in
    s.turn = s.start_turn({"text": "배송 조회요"})
    s.turn.handle.add("네", "/x.wav", 1.0)
    s.voice.say_prompt("잠시만요", kind="filler")
    s.act(Action.BREAK, "words")
    assert s.turn.cancelled
    s.group.kill()


def test_a_newer_caller_turn_cancels_the_one_being_answered(tmp_path):
    s = started(tmp_path)
    first = s.start_turn({"text": "하나"})
    second = s.start_turn({"text": "둘"})
    assert first.cancelled and not second.cancelled and s.turn is second
    held = s.start_turn({"text": "셋"}, held=True)
    assert not second.cancelled and s.preview is held and s.turn is second
    s.cancel_turn()
    assert second.cancelled
    s.group.kill()


def test_the_turn_is_handed_the_calls_settings(tmp_path):
    s = started(tmp_path, turn_timeout_s=4.0, filler_after_s=0.7, slow_filler="a", slow_filler_more="b")
    ctx = s.turn_context()
    assert (ctx.uuid, ctx.rate, ctx.turn_timeout_s, ctx.filler_after_s, ctx.slow_fillers) == \
        (UUID, 8000, 4.0, 0.7, ("a", "b"))
    assert ctx.conv is s.deps.policy.conv and ctx.voice is s.voice and ctx.record is s.record
    assert ctx.stats is s.deps.stats and ctx.escalate == s.escalate and ctx.hang_up == s.hang_up
    assert ctx.clock is s.clock and ctx.speaker is s.deps.speaker
    s.group.kill()


def test_a_hand_off_runs_once_cancels_the_turns_and_uses_the_configured_queue(tmp_path):
    s = started(tmp_path, human_extension="agents", human_dialplan="XML", human_context="q",
                transfer_notice="연결합니다.", apology="죄송합니다.")
    s.voice.break_all()
    turn, preview = s.start_turn({"text": "하나"}), s.start_turn({"text": "둘"}, held=True)
    s.barge.armed_at = 1.0
    s.escalate("caller_requested", "요약", 2)
    s.escalate("sensitive_topic")  # already leaving: ignored
    assert turn.cancelled and preview.cancelled and not s.barge.armed
    _wait(lambda: "exit" in s.conn.lines())
    assert f"api uuid_transfer {UUID} agents XML q" in s.conn.lines()
    assert f"api uuid_setvar {UUID} ai_summary 요약" in s.conn.lines()
    assert "연결합니다." in s.deps.prompts.asked and "죄송합니다." not in s.deps.prompts.asked
    assert s.state == "transferred" and s.deps.stats.escalations == Counter({"caller_requested": 1})
    assert f"api uuid_audio_fork {UUID} stop callagent" in s.conn.lines()  # the fork never follows the caller
    end = s.deps.store.ends()[0]
    assert end["end_reason"] == "transferred" and end["escalation_reason"] == "caller_requested"


def test_a_hand_off_after_a_fault_apologises_and_asks_the_dialog_for_a_summary(tmp_path):
    s = started(tmp_path, apology="죄송합니다.")
    s.escalate("agent_error", failure=True)
    _wait(lambda: "exit" in s.conn.lines())
    assert "죄송합니다." in s.deps.prompts.asked
    assert f"api uuid_setvar {UUID} ai_summary 테스트 요약" in s.conn.lines()


def test_a_caller_gone_during_the_hand_off_is_not_transferred(tmp_path):
    s = started(tmp_path, conn=EslConn(fail={"uuid_transfer": __import__("agent.esl.errors").esl.errors.CallGone("x")}))
    s.escalate("dtmf", priority=3)
    _wait(lambda: any(x.startswith("api uuid_transfer") for x in s.conn.lines()))
    gevent.sleep(0.05)
    assert s.state == "escalating" and "exit" not in s.conn.lines() and s.deps.store.ends() == []


def test_the_agent_hangs_up_after_stopping_its_media(tmp_path):
    s = started(tmp_path, recording_dir=str(tmp_path / "rec"))
    s.hang_up()
    s.hang_up()
    lines = s.conn.lines()
    assert lines[-3:] == [f"api uuid_audio_fork {UUID} stop callagent",
                          f"api uuid_record {UUID} stop {tmp_path / 'rec' / UUID}.wav",
                          f"api uuid_kill {UUID} NORMAL_CLEARING"]
    assert s.state == "ending" and lines.count(f"api uuid_kill {UUID} NORMAL_CLEARING") == 1
    s.group.kill()


def test_a_hang_up_during_a_hand_off_is_allowed_and_after_the_end_is_not(tmp_path):
    s = started(tmp_path)
    s.state = "escalating"
    s.hang_up()
    assert s.state == "ending"
    s2 = started(tmp_path)
    s2.state = "transferred"
    s2.hang_up()
    assert s2.state == "transferred" and not any("uuid_kill" in x for x in s2.conn.lines())
    s.group.kill()
    s2.group.kill()


def test_a_lost_worker_is_recorded_and_hands_off_only_an_active_call(tmp_path, caplog):
    s = started(tmp_path)
    s.state = "ending"
    s.worker_lost("no heartbeat")
    assert _logged(caplog) == [f"call {UUID}: speech worker unavailable (no heartbeat); handing the caller to a human"]
    assert s.deps.store.events("fork_failed")[-1]["detail"] == {"reason": "no heartbeat"}
    assert s.state == "ending"
    s.group.kill()


# the teardown ---------------------------------------------------------------------------------------------


def test_a_failure_in_the_call_hands_off_then_keeps_reading_events(tmp_path, caplog):
    s = make(tmp_path)

    def broken(ev):
        raise RuntimeError("bug")
    s._on_event = broken  # type: ignore[method-assign]
    s.conn.event("DTMF", **{"DTMF-Digit": "1"})
    g = gevent.spawn(s.run)
    _wait(lambda: "exit" in s.conn.lines())
    g.join(5)
    assert s.deps.stats.escalations == Counter({"agent_error": 1})
    assert s.deps.store.ends()[0]["end_reason"] == "transferred"
    assert f"call {UUID} failed" in _logged(caplog)


def test_a_call_that_fails_while_active_is_stored_as_failed_and_stops_listening(tmp_path):
    s = started(tmp_path)
    s.group.kill()
    s.hangup_cause = "NORMAL_TEMPORARY_FAILURE"
    s._teardown()
    assert s.deps.store.ends()[0]["end_reason"] == "failed"
    assert s.deps.store.ends()[0]["hangup_cause"] == "NORMAL_TEMPORARY_FAILURE"
    assert f"api uuid_audio_fork {UUID} stop callagent" in s.conn.lines() and s.conn.closed


@pytest.mark.parametrize("state,stops", [("escalating", True), ("ending", True), ("gone", False),
                                         ("transferred", False)])
def test_the_teardown_stops_the_fork_only_while_the_channel_is_ours(tmp_path, state, stops):
    s = started(tmp_path)
    s.group.kill()
    s.state = state
    s._teardown()
    assert (f"api uuid_audio_fork {UUID} stop callagent" in s.conn.lines()) is stops
    if state in ("escalating", "ending"):
        assert s.deps.store.ends()[0]["end_reason"] == "caller_hangup"


def test_a_dialog_that_fails_to_close_does_not_stop_the_teardown(tmp_path):
    s = started(tmp_path)
    s.group.kill()
    s.deps.policy.conv.fail_close = True
    s._teardown()
    assert s.conn.closed and s.deps.speaker.spool.cleaned == [UUID]


def test_the_recording_is_sealed_after_the_call(tmp_path):
    sealed: list[Any] = []
    s = started(tmp_path, recording_dir=str(tmp_path / "rec"), seal=lambda uuid, path: sealed.append((uuid, path)))
    s.recorder.path.write_bytes(b"RIFF")
    s.group.kill()
    s._teardown()
    _wait(lambda: sealed)
    assert sealed == [(UUID, tmp_path / "rec" / f"{UUID}.wav")]


def test_a_recording_never_written_or_failing_to_seal_is_left_alone(tmp_path, caplog):
    calls: list[Any] = []

    def seal(uuid, path):
        calls.append(path)
        raise OSError("no key")
    s = started(tmp_path, recording_dir=str(tmp_path / "rec"), seal=seal)
    s.group.kill()
    s._seal(s.recorder.path)  # no file: nothing to seal
    assert calls == []
    s.recorder.path.write_bytes(b"RIFF")
    s._seal(s.recorder.path)  # the failure is reported, not raised
    assert calls == [s.recorder.path]
    assert [r.getMessage() for r in caplog.records if r.name == "agent.call.session"] == \
        [f"call {UUID}: sealing the recording failed"]


# the ticker -----------------------------------------------------------------------------------------------


def test_the_ticker_resumes_a_pause_held_too_long_and_ends_a_keypad_entry(tmp_path):
    t = [1000.0]
    s = make(tmp_path, barge_in_max_pause_s=1.0, dtmf_gap_s=2.0)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    gevent.sleep(0.01)  # the ticker starts on the call's clock
    s.fork.connected = True
    s.barge.armed_at = t[0]
    s.voice.paused = True
    s._on_dtmf("7")
    t[0] += 2.5
    _wait(lambda: s.deps.store.events("barge_in_resumed"))
    assert s.deps.store.events("barge_in_resumed")[0]["detail"] == {"why": "pause_timeout"}
    _wait(lambda: s.turn is not None)
    assert s.turn.data == {"text": "7", "source": "dtmf"}
    s.group.kill()


def test_the_ticker_loses_a_worker_that_never_connects(tmp_path):
    t = [1000.0]
    s = make(tmp_path, fork_connect_timeout_s=3.0)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    gevent.sleep(0.01)
    t[0] += 3.5
    _wait(lambda: s.deps.store.events("fork_failed"))
    assert s.deps.store.events("fork_failed")[0]["detail"] == {"reason": "no connect from the worker"}
    _wait(lambda: "exit" in s.conn.lines())


def test_the_ticker_reprompts_a_silent_caller_only_when_nobody_is_busy(tmp_path):
    t = [1000.0]
    s = make(tmp_path, no_input_timeout_s=5.0, no_input_prompts=["여보세요?"], prompt_s=10.0)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    gevent.sleep(0.01)
    s.fork.connected = True
    s.liveness.timeout_s = 0
    t[0] += 6
    gevent.sleep(0.35)
    assert s.deps.store.events("no_input") == []  # the greeting is still playing: the agent is busy
    s.voice.break_all()
    s.fork.caller_speaking = True
    t[0] += 6
    gevent.sleep(0.35)
    assert s.deps.store.events("no_input") == []
    s.fork.caller_speaking = False
    s.turn = SimpleNamespace(done=False)  # type: ignore[assignment]  # the agent is still thinking
    t[0] += 6
    gevent.sleep(0.35)
    assert s.deps.store.events("no_input") == []
    s.turn.done = True
    t[0] += 6
    _wait(lambda: "여보세요?" in s.deps.prompts.asked)  # the prompt is fetched off the loop
    assert s.deps.store.events("no_input")[0]["detail"] == {"prompts_used": 1, "give_up": False}
    s.group.kill()


def test_the_ticker_stops_once_the_call_is_gone_and_expires_playbacks_while_ending(tmp_path):
    t = [1000.0]
    s = make(tmp_path)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    s.state = "ending"
    t[0] += 100
    _wait(lambda: s.deps.store.events("playback_lost"))
    s.state = "gone"
    gevent.sleep(0.25)
    assert all(g.dead for g in s.group)


def test_a_dtmf_event_reaches_the_keypad(tmp_path):
    s = started(tmp_path)
    s._on_event(Event({"Event-Name": "DTMF", "Unique-ID": UUID, "DTMF-Digit": "0"}))
    assert s.state == "escalating"
    _wait(lambda: "exit" in s.conn.lines())


def test_each_way_a_call_ends_is_logged_once_and_ends_its_greenlets(tmp_path, caplog):
    caplog.set_level("INFO", logger="agent.call.session")
    for name, why in (("CHANNEL_HANGUP", "hangup"), ("CHANNEL_HANGUP_COMPLETE", "hangup complete")):
        s = started(tmp_path)
        sleeper = s.group.spawn(gevent.sleep, 10)
        caplog.clear()
        s._on_event(Event({"Event-Name": name, "Unique-ID": UUID}))
        s._gone("again")
        gevent.sleep(0)
        assert _logged(caplog) == [f"call {UUID}: ended ({why})"] and sleeper.dead
    s = started(tmp_path)
    caplog.clear()
    s.conn.events.put(Disconnect("disconnect"))
    s.conn.events.put(Closed("eof"))
    s._event_loop()
    assert _logged(caplog) == [f"call {UUID}: ended (disconnect-notice)"]


def test_a_call_gone_before_its_record_existed_ends_quietly(tmp_path):
    s = make(tmp_path)
    s._gone("hangup")
    assert s.state == "gone" and s.deps.store.ops == []


def test_the_first_typed_key_masks_the_recording_and_restarts_the_silence_clock(tmp_path):
    s = started(tmp_path, recording_dir=str(tmp_path / "rec"))
    s.clock = lambda: 777.0  # type: ignore[method-assign]
    s._on_dtmf("1")
    assert s.idle.last_activity == 777.0
    assert s.conn.lines()[-1] == f"api uuid_record {UUID} mask {tmp_path / 'rec' / UUID}.wav"
    assert s.deps.store.events("recording_masked")[0]["detail"] == {"why": "keypad"}
    s.group.kill()


def test_typed_keys_are_stored_masked_as_an_entry_and_a_menu_key_as_pressed(tmp_path):
    s = started(tmp_path)
    for d in "123":
        s._on_dtmf(d)
    keys = s.deps.store.events("dtmf")
    assert [k["detail"] for k in keys] == [{"digit": None, "entry": True, "masked": True}] * 3
    s2 = started(tmp_path)
    s2._on_dtmf("*")
    s2.record.event("no_input")
    assert s2.deps.store.events("dtmf")[0]["detail"] == {"digit": "*"}
    s3 = started(tmp_path)
    s3.record.turn(2, "agent", "카드 번호를 입력해 주세요", started_at="t")  # a secure entry: each key at once
    s3._on_dtmf("4")
    assert s3.deps.store.events("dtmf")[0]["detail"] == {"digit": None, "entry": True, "masked": True}
    s.group.kill()
    s2.group.kill()
    s3.group.kill()


def test_a_break_is_timed_on_the_calls_clock_and_every_one_is_counted(tmp_path):
    s = started(tmp_path)
    ticks = iter([10.0, 10.0123, 20.0, 20.5])
    s.clock = lambda: next(ticks)  # type: ignore[method-assign]
    s.act(Action.BREAK, "voiced")
    s.act(Action.BREAK, "words")
    assert [e["detail"]["break_ms"] for e in s.deps.store.events("barge_in")] == [12.3, 500.0]
    assert s.deps.stats.barge_ins == 2
    s.group.kill()


def test_every_hand_off_is_counted_by_its_reason(tmp_path):
    s = started(tmp_path)
    s.escalate("dtmf")
    s.state = "active"
    s.escalate("dtmf")
    assert s.deps.stats.escalations == Counter({"dtmf": 2})
    s.group.kill()


def test_a_break_over_only_a_filler_spares_a_turn_with_nothing_to_say_yet(tmp_path):
    s = started(tmp_path)
    s.voice.break_all()
    path = s.voice.prompt_path("잠시만요")
    turn = s.start_turn({"text": "배송"})  # not run yet: no audio, its reply handle set aside
    turn.handle.synthesis_done = True
    s.voice.play_file("잠시만요", path, kind="filler", interruptible=True)
    s.act(Action.BREAK, "words")
    assert not turn.cancelled
    turn.handle.add("네", "/x.wav", 1.0)  # once it has audio, a break cancels it
    s.voice.play_file("잠시만요", path, kind="filler", interruptible=True)
    s.act(Action.BREAK, "words")
    assert turn.cancelled
    s.group.kill()


def test_a_turn_starts_at_the_calls_time_and_a_preview_is_held(tmp_path):
    s = started(tmp_path)
    s.clock = lambda: 321.0  # type: ignore[method-assign]
    turn = s.start_turn({"text": "하나"})
    held = s.start_turn({"text": "둘"}, held=True)
    assert turn.t_in == 321.0 and not turn.held and held.held
    s.group.kill()


def test_a_hand_off_without_a_dialog_has_no_summary(tmp_path):
    s = started(tmp_path)
    s.conv = None
    s.escalate("agent_error", failure=True)
    _wait(lambda: "exit" in s.conn.lines())
    assert f"api uuid_setvar {UUID} ai_summary -" in s.conn.lines()


def test_the_ticker_keeps_expiring_playbacks_during_a_hand_off(tmp_path):
    t = [1000.0]
    s = make(tmp_path)
    s.clock = lambda: t[0]  # type: ignore[method-assign]
    s._setup()
    s.state = "escalating"
    gevent.sleep(0.25)  # ticks while escalating, before the playback is overdue
    assert s.deps.store.events("playback_lost") == []
    t[0] += 100
    _wait(lambda: s.deps.store.events("playback_lost"))
    s.group.kill()
