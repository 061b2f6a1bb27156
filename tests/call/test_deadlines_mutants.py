"""The call's deadlines, tick by tick with time passed in: a silent caller hears each reprompt once, then is said
goodbye to (the goodbye to its end, then `uuid_kill`) or handed to a human; the call-length rule is asked once a
second and its hand-off carries the dialog's reason, summary and priority unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from agent.call.actions.say import Voice
from agent.call.channel import ChannelInfo
from agent.call.deadlines import CallDeadlines
from agent.call.record import CallRecord
from agent.call.speech import SpeechHandle
from agent.call.turns.idle import IdlePolicy
from agent.dialog.policy import Escalate
from tests.call.fast_fakes import UUID, Clock, FakeConn, FakePrompts, FakeStore


class SpyVoice(Voice):
    """The real voice; waiting for a playback's end returns at once and says how long it would have waited."""

    waits: list[tuple[str, float]]

    def wait_finished(self, handle: SpeechHandle, timeout: float) -> bool:
        self.waits.append((handle.kind, timeout))
        return True


class Call:
    def __init__(self, tmp_path, *, action: str = "human", prompts: tuple[str, ...] = ("여보세요?", "들리세요?"),
                 check_time: Any = None) -> None:
        self.clock = Clock(100.0)
        self.conn, self.store = FakeConn(), FakeStore()
        self.record = CallRecord(self.store, ChannelInfo(uuid=UUID))  # type: ignore[arg-type]
        self.voice = SpyVoice(self.conn, UUID, 8000, FakePrompts(tmp_path, 2.0), self.record,  # type: ignore[arg-type]
                              clock=self.clock)
        self.voice.waits = []
        self.idle = IdlePolicy(10.0, prompts)
        self.idle.activity(100.0)
        self.steps: list[Any] = []
        self.d = CallDeadlines(
            self.conn, UUID, self.voice, self.record, self.idle, action, "안녕히 계세요.",  # type: ignore[arg-type]
            escalate=lambda *a, **k: self.steps.append(("escalate", a, k)),
            spawn=lambda fn: self.steps.append(("spawn", fn)),
            ending=lambda: self.steps.append("ending"),
            stop_media=lambda: self.steps.append(("stop_media", list(self.conn.sent))),
            check_time=check_time)

    def tick(self, t: float, busy: bool = False) -> None:
        self.clock.t = t
        self.d.tick(t, busy=busy)


def _said(call: Call) -> list[str]:
    return [t["text"] for t in call.store.turns() if t["speaker"] == "agent"]


def test_a_silent_caller_hears_each_prompt_once_then_is_handed_to_a_human(tmp_path):
    call = Call(tmp_path)
    call.tick(109.9)
    assert call.conn.sent == [] and call.store.ops[-1][0] == "call_start"
    call.tick(110.0)  # exactly the timeout: the first reprompt
    assert _said(call) == ["여보세요?"] and len(call.conn.playbacks()) == 1
    assert call.store.events("no_input")[-1]["detail"] == {"prompts_used": 1, "give_up": False}
    call.tick(119.9)
    assert len(call.conn.playbacks()) == 1  # the silence clock restarted at the prompt
    call.tick(120.0)
    assert _said(call) == ["여보세요?", "들리세요?"]
    assert call.steps == []
    call.tick(130.0)
    assert call.store.events("no_input")[-1]["detail"] == {"prompts_used": 2, "give_up": True}
    assert call.steps == [("escalate", ("no_input",), {})]
    assert len(call.conn.playbacks()) == 2  # nothing more is said before the hand-off's own notice


def test_while_the_agent_or_caller_is_busy_the_silence_is_not_the_callers(tmp_path):
    call = Call(tmp_path)
    call.tick(115.0, busy=True)
    call.tick(124.9)
    assert call.conn.sent == [] and call.store.events("no_input") == []
    call.tick(125.0)
    assert _said(call) == ["여보세요?"]


def test_a_prompt_is_interruptible_and_said_once_per_timeout(tmp_path):
    call = Call(tmp_path)
    call.tick(110.0)
    (handle,) = [h for h in call.voice.playout.handles.values() if h.kind == "prompt"]
    assert handle.interruptible and handle.text == "여보세요?"


def test_when_the_prompts_are_used_up_the_agent_says_goodbye_and_hangs_up(tmp_path):
    call = Call(tmp_path, action="hangup", prompts=())
    call.tick(110.0)
    assert call.store.events("no_input")[-1]["detail"] == {"prompts_used": 0, "give_up": True}
    assert [s[0] for s in call.steps] == ["spawn"] and call.conn.sent == []  # the goodbye runs in its greenlet
    assert call.steps[0][1] == call.d.say_goodbye
    call.steps.clear()
    call.d.say_goodbye()
    assert call.steps[0] == "ending"  # before the goodbye: no hand-off or new turn can start over it
    assert _said(call) == ["안녕히 계세요."]
    (handle,) = [h for h in call.voice.playout.handles.values()]
    assert not handle.interruptible  # the caller cannot cut the goodbye short
    ((kind, waited),) = call.voice.waits
    assert kind == "prompt" and waited == pytest.approx(2.0 + 3.0)  # its 2 s, plus slack
    stop_kind, sent_before_stop = call.steps[1]
    assert stop_kind == "stop_media" and len(sent_before_stop) == 1  # the goodbye queued, nothing else yet
    assert call.conn.lines()[-1] == f"api uuid_kill {UUID} NORMAL_CLEARING"
    assert call.conn.lines()[0].startswith("sendmsg playback ")


def test_the_call_length_rule_is_asked_once_a_second_and_its_hand_off_kept_as_the_dialog_said(tmp_path):
    asked: list[float] = []
    outcome: list[Escalate | None] = [None]

    def check() -> Escalate | None:
        asked.append(call.clock.t)
        return outcome[0]

    call = Call(tmp_path, check_time=check)
    call.tick(100.0)
    call.tick(100.5)
    call.tick(100.99)
    call.tick(101.0)
    call.tick(101.5)
    assert asked == [100.0, 101.0]
    assert call.steps == []
    outcome[0] = Escalate(reason="call_too_long", summary="통화 20분 초과", priority=2)
    call.tick(102.0)
    assert call.steps == [("escalate", ("call_too_long", "통화 20분 초과", 2), {})]


def test_without_a_call_length_rule_nothing_is_asked(tmp_path):
    call = Call(tmp_path)
    call.tick(105.0)
    assert call.steps == [] and call.conn.sent == []
