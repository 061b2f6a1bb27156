"""The hand-off on a fake socket: the exact api lines in their order (fork and recording stopped first, the
flush, the four channel variables mod_callcenter exports, the notice or the apology, `uuid_transfer`, `exit`),
what is stored, and that no failing step — the store, the summary, a variable, the notice, gevent's Timeout —
stops the transfer; a caller who leaves ends it quietly."""

from __future__ import annotations

import gevent
import pytest

from agent.call.actions.transfer import HandOff, HumanQueue, transfer_to_human
from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.esl.errors import CallGone, CommandFailed
from tests.call.fast_fakes import UUID, Clock, FakeConn, FakePrompts, FakeStore, spy_voice

QUEUE = HumanQueue("human", "XML", "ai_escalation", "상담원에게 연결해 드리겠습니다.",
                   "죄송합니다. 바로 연결해 드릴게요.")


class Call:
    def __init__(self, tmp_path, *, notice_s: float = 2.0, summary: object = "고객이 환불을 요청함", **conn) -> None:
        self.clock = Clock(10.0)
        self.conn, self.store = FakeConn(**conn), FakeStore()
        self.record = CallRecord(self.store, ChannelInfo(uuid=UUID))  # type: ignore[arg-type]
        self.prompts = FakePrompts(tmp_path, notice_s)
        self.voice = spy_voice(self.conn, self.record, self.prompts, self.clock)
        self.steps: list[str] = []

        def summarize() -> str:
            self.steps.append("summarize")
            if isinstance(summary, BaseException):
                raise summary
            return summary  # type: ignore[return-value]

        def before() -> None:
            self.steps.append("stop media")
            self.conn.sent.append(("api", "(fork and recording stopped)"))

        self.handoff = HandOff(conn=self.conn, uuid=UUID, voice=self.voice, record=self.record,  # type: ignore[arg-type]
                               queue=QUEUE, summarize=summarize, mask=lambda s: s.replace("환불", "**"),
                               before_transfer=before)

    def run(self, reason: str = "caller_requested", summary: str = "", priority: int = 5,
            failure: bool = False) -> str:
        return transfer_to_human(self.handoff, reason, summary, priority, failure)


def test_the_hand_off_in_order_on_the_wire_and_in_the_record(tmp_path):
    call = Call(tmp_path)
    assert call.run("caller_requested", priority=2) == "transferred"
    lines = call.conn.lines()
    assert lines[:6] == [
        "api (fork and recording stopped)",
        f"api uuid_break {UUID} all",
        f"api uuid_setvar {UUID} escalation_reason caller_requested",
        f"api uuid_setvar {UUID} ai_summary 고객이 **을 요청함",
        f"api uuid_setvar {UUID} ai_call_id {UUID}",
        f"api uuid_setvar {UUID} ai_priority 2"]
    assert lines[6].startswith("sendmsg playback {utt_id=") and lines[6].endswith("/prompt-1.wav")
    assert call.prompts.asked == [QUEUE.notice]
    assert lines[7:] == [f"api uuid_transfer {UUID} human XML ai_escalation", "exit"]
    assert call.store.events("escalation")[0]["detail"] == {"reason": "caller_requested", "priority": 2}
    (end,) = call.store.ends()
    assert end["end_reason"] == "transferred" and end["transfer_target"] == "human XML ai_escalation"
    assert end["escalation_reason"] == "caller_requested" and end["summary"] == "고객이 **을 요청함"
    (notice,) = [t for t in call.store.turns()]
    assert notice["text"] == QUEUE.notice
    assert call.voice.waits == [("prompt", pytest.approx(2.0 + 3.0))]  # the notice plays to its end, plus slack
    handle = next(iter(call.voice.playout.handles.values()))
    assert not handle.interruptible


def test_after_a_fault_the_caller_hears_the_apology(tmp_path):
    call = Call(tmp_path)
    call.run("worker_unavailable", failure=True)
    assert call.prompts.asked == [QUEUE.apology]


def test_a_long_notice_never_holds_the_transfer_past_its_limit(tmp_path):
    call = Call(tmp_path, notice_s=20.0)
    call.run()
    assert call.voice.waits == [("prompt", 8.0)]


def test_a_summary_given_is_used_masked_and_none_is_asked(tmp_path):
    call = Call(tmp_path)
    call.run("sensitive_topic", summary="환불 문의")
    assert "summarize" not in call.steps
    assert f"api uuid_setvar {UUID} ai_summary ** 문의" in call.conn.lines()


@pytest.mark.parametrize("summary", ["", None, RuntimeError("model down")])
def test_without_a_summary_the_variable_says_so_and_the_record_keeps_none(tmp_path, summary):
    call = Call(tmp_path, summary=summary)
    assert call.run() == "transferred"
    assert f"api uuid_setvar {UUID} ai_summary -" in call.conn.lines()
    assert call.store.ends()[0]["summary"] is None
    assert call.conn.lines()[-2:] == [f"api uuid_transfer {UUID} human XML ai_escalation", "exit"]


@pytest.mark.parametrize("failing", ["uuid_break", "uuid_setvar", "sendmsg playback"])
def test_a_failing_step_does_not_stop_the_transfer(tmp_path, failing):
    call = Call(tmp_path, fail={failing: CommandFailed(failing, "-ERR")})
    assert call.run() == "transferred"
    assert call.conn.lines()[-2:] == [f"api uuid_transfer {UUID} human XML ai_escalation", "exit"]
    assert call.store.ends()[0]["transfer_target"] == "human XML ai_escalation"


def test_a_timeout_inside_a_step_does_not_stop_the_transfer(tmp_path):
    call = Call(tmp_path, fail={"uuid_setvar": gevent.Timeout(1)})
    call.handoff.before_transfer = lambda: (_ for _ in ()).throw(gevent.Timeout(1))  # type: ignore[assignment]
    assert call.run() == "transferred"
    assert call.conn.lines()[-2:] == [f"api uuid_transfer {UUID} human XML ai_escalation", "exit"]


def test_a_store_that_fails_does_not_stop_the_transfer(tmp_path):
    call = Call(tmp_path)

    def broken(*a, **k):
        raise OSError("disk full")
    call.record.event = broken  # type: ignore[method-assign]
    call.record.end = broken  # type: ignore[method-assign]
    assert call.run() == "transferred"
    assert call.conn.lines()[-1] == "exit"


def test_a_refused_transfer_leaves_the_call_to_the_dialplan_fallback(tmp_path):
    call = Call(tmp_path, api_replies={"uuid_transfer": "-ERR no such extension\n"})
    assert call.run("dtmf", priority=3) == "transferred"
    assert call.store.ends()[0]["transfer_target"] == "dialplan-fallback"
    assert call.conn.lines()[-1] == "exit"  # the socket goes: the dialplan goes on to the human queue


def test_a_transfer_that_never_answers_also_falls_back(tmp_path):
    call = Call(tmp_path, fail={"uuid_transfer": gevent.Timeout(1)})
    assert call.run() == "transferred"
    assert call.store.ends()[0]["transfer_target"] == "dialplan-fallback"


def test_when_exit_fails_the_socket_is_closed(tmp_path):
    call = Call(tmp_path, fail={"exit": CommandFailed("exit", "-ERR")})
    assert call.run() == "transferred" and call.conn.closed
    call = Call(tmp_path, fail={"exit": gevent.Timeout(1)})
    assert call.run() == "transferred" and call.conn.closed
    call = Call(tmp_path)
    call.run()
    assert not call.conn.closed


@pytest.mark.parametrize("gone_at", ["uuid_break", "uuid_setvar", "sendmsg playback", "uuid_transfer"])
def test_a_caller_who_leaves_during_the_hand_off_ends_it_quietly(tmp_path, gone_at):
    call = Call(tmp_path, fail={gone_at: CallGone("eof")})
    assert call.run() == "caller_gone"
    assert call.store.ends() == [] and "exit" not in call.conn.lines()
    assert "uuid_transfer" not in " ".join(call.conn.lines()[:-1])


def test_a_caller_who_leaves_while_the_summary_is_written_ends_it_quietly(tmp_path):
    call = Call(tmp_path, summary=CallGone("eof"))
    assert call.run() == "caller_gone" and call.store.ends() == []


def test_the_queue_target_is_what_the_transfer_names():
    assert QUEUE.target == "human XML ai_escalation"


# what an operator reads when a step fails: the call, the step, the error ------------------------------------


def _logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.call.actions.transfer"]


@pytest.mark.parametrize("step", ["record", "stop listening", "flush", "setvar escalation_reason",
                                  "setvar ai_summary", "notice", "record end"])
def test_each_failing_step_is_logged_with_the_call_and_the_error(tmp_path, caplog, step):
    call = Call(tmp_path)
    boom = RuntimeError("boom")

    def fail(*a, **k):
        raise boom
    if step == "record":
        call.record.event = fail  # type: ignore[method-assign]
    elif step == "stop listening":
        call.handoff.before_transfer = fail
    elif step == "flush":
        call.conn.fail["uuid_break"] = boom
    elif step.startswith("setvar"):
        call.conn.fail[f"uuid_setvar {UUID} {step.split()[1]} "] = boom
    elif step == "notice":
        call.conn.fail["sendmsg playback"] = boom
    else:
        call.record.end = fail  # type: ignore[method-assign]
    caplog.set_level("INFO", logger="agent.call.actions.transfer")
    assert call.run() == "transferred"
    assert _logged(caplog) == [f"call {UUID}: hand-off step '{step}' failed: boom"]


def test_a_failed_summary_is_logged_by_its_kind(tmp_path, caplog):
    call = Call(tmp_path, summary=KeyError("model"))
    caplog.set_level("INFO", logger="agent.call.actions.transfer")
    call.run()
    assert _logged(caplog) == [f"call {UUID}: summary failed (KeyError); transferring without it"]


def test_a_caller_who_left_and_a_refused_transfer_are_logged(tmp_path, caplog):
    caplog.set_level("INFO", logger="agent.call.actions.transfer")
    Call(tmp_path, fail={"uuid_transfer": CallGone("eof")}).run()
    assert _logged(caplog) == [f"call {UUID}: caller left during the hand-off"]
    caplog.clear()
    Call(tmp_path, api_replies={"uuid_transfer": "-ERR no route\n"}).run()
    (line,) = _logged(caplog)
    assert line.startswith(f"call {UUID}: transfer failed (") and "-ERR no route" in line
    assert line.endswith("); leaving the call to the dialplan fallback")
