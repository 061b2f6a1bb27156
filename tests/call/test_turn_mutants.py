"""One agent turn, driven without sockets: the dialog's events become playbacks on the wire in order, the caller's
and the agent's turns are stored with their latency parts (time passed in through the call's clock, the engines'
time measured on the same clock), a held reply is queued only once released, and every failure ends in a hand-off,
never in silence."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pytest

from agent.call.actions.say import Voice
from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.call.speech import SpeechHandle
from agent.call.turn import Turn, TurnContext
from agent.dialog.policy import EndCall, Escalate, Filler, Say, ToolUsed
from agent.dialog.state import current_turn
from agent.ops.logs import bind_call
from tests.call.fast_fakes import UUID, Clock, FakeConn, FakePrompts, FakeStore


class TickingStore(FakeStore):
    """Each write takes the controller 5 ms of the call's clock: the controller's own time in a turn."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    step = 0.005

    def submit(self, op: str, **fields: Any) -> None:
        self.clock.t += self.step
        super().submit(op, **fields)


@pytest.fixture(autouse=True)
def _call_id_bound() -> None:
    """A turn runs in its call's greenlet, where the session has bound the call id (agent.ops.logs.bind_call);
    the shared conftest unbinds it after each test."""
    bind_call(UUID)


class SpyVoice(Voice):
    """The real voice; a wait for a playback's end returns at once, the audio played out as FreeSWITCH would have
    reported it (PLAYBACK_START and STOP per chunk), and the wait's limit written down."""

    waits: list[tuple[str, float]]

    def wait_finished(self, handle: SpeechHandle, timeout: float) -> bool:
        self.waits.append((handle.kind, round(timeout, 6)))
        for chunk in handle.chunks:
            handle.on_start(chunk.index, self.clock())
            handle.on_stop(chunk.index, "done", self.clock())
        return True


class Conv:
    """A dialog that yields the events it is given; each step takes `step_s` of the clock, in the pool thread."""

    def __init__(self, clock: Clock, events: list[Any], *, step_s: float = 0.4, usage: Any = None,
                 settle: bool = True, discard: bool = True) -> None:
        self.clock, self.events, self.step_s, self.usage = clock, events, step_s, usage
        self.asked: list[tuple[str, str]] = []
        self.scopes: list[str | None] = []
        self.settled: list[tuple[str, str]] = []
        self.discarded: list[str] = []
        self.heard: list[tuple[str, str]] = []
        self.closed = False
        self.gate: threading.Event | None = None
        self.gate_at = 0  # the step that waits for the gate
        if settle:
            self.settle_turn = lambda turn_id, heard: self.settled.append((turn_id, heard))
        if discard:
            self.discard_turn = self.discarded.append
        self.closed_scope: str | None = None
        if usage is not None:
            self.take_usage = lambda: self.usage

    def agent_heard(self, said: str, heard: str) -> None:
        self.heard.append((said, heard))

    def respond(self, text: str, source: str) -> Iterator[Any]:
        self.asked.append((text, source))
        self.scopes.append(current_turn())
        try:
            for i, event in enumerate(self.events):
                if self.gate is not None and i == self.gate_at:
                    self.gate.wait(10)
                self.clock.t += self.step_s
                self.scopes.append(current_turn())
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            self.closed = True
            self.closed_scope = current_turn()


@dataclass
class Spoken:
    text: str
    path: Path
    duration_s: float
    tts_text: str = ""


class Speaker:
    """TTS: one or more chunks per sentence, each taking `chunk_s` of the clock."""

    def __init__(self, clock: Clock, *, chunk_s: float = 0.2, parts: int = 1, text_each: bool = False) -> None:
        self.clock, self.chunk_s, self.parts, self.text_each = clock, chunk_s, parts, text_each
        self.asked: list[tuple[str, str, str, int]] = []
        self.closed = 0
        self.gate: threading.Event | None = None

    def speak(self, call_id: str, utt_id: str, text: str, rate: int) -> Iterator[Spoken]:
        self.asked.append((call_id, utt_id, text, rate))
        try:
            for i in range(self.parts):
                if self.gate is not None:
                    self.gate.wait(10)
                self.clock.t += self.chunk_s
                last = i == self.parts - 1
                yield Spoken(text if last or self.text_each else "", Path(f"/spool/{utt_id}-{i}.wav"), 1.0,
                             tts_text=f"<{text}>" if last else "")
        finally:
            self.closed += 1
            self.closed_in = threading.current_thread()


class Call:
    def __init__(self, tmp_path, monkeypatch, events: list[Any], **kw: Any) -> None:
        self.clock = Clock(100.0)
        # The engines' time is measured with the same clock, so the controller's overhead is exact.
        monkeypatch.setattr("agent.call.threads.time", SimpleNamespace(perf_counter=self.clock))
        self.conn, self.store = FakeConn(), TickingStore(self.clock)
        self.record = CallRecord(self.store, ChannelInfo(uuid=UUID))  # type: ignore[arg-type]
        self.store.ops.clear()
        self.voice = SpyVoice(self.conn, UUID, 8000, FakePrompts(tmp_path, 1.0), self.record,  # type: ignore[arg-type]
                              clock=self.clock)
        self.voice.waits = []
        self.conv = Conv(self.clock, events,
                         **{k: v for k, v in kw.items() if k in ("step_s", "usage", "settle", "discard")})
        self.speaker = Speaker(self.clock, **{k: v for k, v in kw.items() if k in ("chunk_s", "parts", "text_each")})
        self.store.step = kw.get("store_step", 0.005)
        self.steps: list[Any] = []
        self.stats = SimpleNamespace(turns=[])
        self.stats.record_turn = lambda overhead, first: self.stats.turns.append((overhead, first))
        self.ctx = TurnContext(
            uuid=UUID, conv=self.conv, voice=self.voice, speaker=self.speaker,  # type: ignore[arg-type]
            record=self.record, rate=16000, escalate=lambda *a, **k: self.steps.append(("escalate", a, k)),
            hang_up=lambda: self.steps.append(("hang_up",)), turn_timeout_s=kw.get("turn_timeout_s", 8.0),
            filler_after_s=kw.get("filler_after_s", 60.0), slow_fillers=("잠시만요.", "조금만요."),
            stats=None if kw.get("no_stats") else self.stats, clock=self.clock)

    def turn(self, data: dict[str, Any] | None = None, held: bool = False) -> Turn:
        data = data if data is not None else {"text": " 배송 조회요 ", "utterance": 4, "source": "asr",
                                              "engine": "vosk", "eos_wait_ms": 240, "asr_ms": 80,
                                              "eot": {"reason": "sentence_end"}, "start": 1.0, "end": 2.5,
                                              "extra": "x"}
        return Turn(self.ctx, data, self.clock.t, held=held)

    def agent_turns(self) -> list[dict[str, Any]]:
        return [t for t in self.store.turns() if t["speaker"] == "agent"]

    def caller_turns(self) -> list[dict[str, Any]]:
        return [t for t in self.store.turns() if t["speaker"] == "caller"]


def _until(cond, limit: float = 5.0) -> None:
    with gevent.Timeout(limit):
        while not cond():
            gevent.sleep(0.005)


def test_a_turn_speaks_each_sentence_in_order_and_records_both_sides(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네, 확인했습니다."), ToolUsed("lookup_order", True, 12.345),
                                        Say("내일 도착합니다.")])
    turn = call.turn()
    turn.run()
    assert call.conv.asked == [("배송 조회요", "asr")]
    played = call.conn.playbacks()
    utt = turn.handle.utt_id
    assert played == [f"{{utt_id={utt},chunk=0}}/spool/{utt}-1-0.wav", f"{{utt_id={utt},chunk=1}}/spool/{utt}-2-0.wav"]
    assert [s[3] for s in call.conn.sent] == [{"event_lock": True, "app_uuid": f"{UUID}-{utt}-0"},
                                                {"event_lock": True, "app_uuid": f"{UUID}-{utt}-1"}]
    assert call.speaker.asked == [(UUID, f"{utt}-1", "네, 확인했습니다.", 16000),
                                  (UUID, f"{utt}-2", "내일 도착합니다.", 16000)]
    (caller,) = call.caller_turns()
    assert caller["seq"] == 1 and caller["text"] == "배송 조회요" and caller["source"] == "asr"
    assert caller["engine"] == "vosk" and caller["eos_wait_ms"] == 240 and caller["asr_ms"] == 80
    assert caller["detail"] == {"utterance": 4, "start": 1.0, "end": 2.5, "eot": {"reason": "sentence_end"}}
    (agent,) = call.agent_turns()
    assert agent["seq"] == 2 and agent["text"] == "네, 확인했습니다. 내일 도착합니다." and agent["source"] == "policy"
    assert agent["heard_text"] == "네, 확인했습니다. 내일 도착합니다." and agent["interrupted"] is False
    assert agent["eos_wait_ms"] == 240 and agent["asr_ms"] == 80
    # t_in 100.0; the caller's row 5 ms; the dialog 400 ms; the TTS 200 ms: the controller's own time is 5 ms.
    assert agent["dialog_ms"] == pytest.approx(405.0) and agent["tts_ms"] == pytest.approx(200.0)
    assert agent["first_audio_ms"] == pytest.approx(1605.0)  # the start FreeSWITCH reported at the wait
    detail = agent["detail"]
    assert detail["utt_id"] == utt and detail["overhead_ms"] == pytest.approx(5.0)
    assert detail["tools"] == [{"name": "lookup_order", "ok": True, "ms": 12.3}]
    assert detail["eot"] == {"reason": "sentence_end"}
    assert detail["tts_text"] == "<네, 확인했습니다.> <내일 도착합니다.>"
    assert "llm_usage" not in detail and "preemptive_lead_ms" not in detail
    assert call.stats.turns == [(pytest.approx(5.0), pytest.approx(1605.0))]
    assert turn.done and not turn.cancelled and call.steps == [] and call.conv.closed
    # The turn waits for its audio to play out: its planned end plus slack.
    assert call.voice.waits[-1] == ("reply", pytest.approx(1.0 + 5.0))  # the last chunk's 1 s is left
    assert set(call.conv.scopes) == {turn.turn_id} and turn.turn_id == f"{UUID}:{utt}"
    assert call.conv.settled == [(turn.turn_id, "네, 확인했습니다. 내일 도착합니다.")]  # it played out


def test_the_first_audio_and_what_was_heard_are_the_turns(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("하나 둘 셋 넷")], parts=2)
    turn = call.turn()
    orig = call.voice.queue

    def queue_and_play(handle, text, path, duration_s, *, group=None):
        orig(handle, text, path, duration_s, group=group)
        if handle.kind == "reply" and len(handle.chunks) == 1:
            call.clock.t += 0.05
            handle.on_start(0, call.clock.t)
            handle.on_stop(0, "done", call.clock.t + 1)
    call.voice.queue = queue_and_play  # type: ignore[method-assign]
    turn.run()
    chunks = turn.handle.chunks
    assert [c.group for c in chunks] == [1000, 1000]  # two parts of one sentence: one group
    (agent,) = call.agent_turns()
    assert agent["first_audio_ms"] == pytest.approx(605.0 + 50.0)
    assert call.stats.turns == [(pytest.approx(5.0), pytest.approx(655.0))]
    assert agent["text"].split() == ["하나", "둘", "셋", "넷"]
    assert [c.text for c in chunks] == ["", "하나 둘 셋 넷"]


def test_each_sentence_starts_a_new_group(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("하나"), Say("둘")], parts=2)
    turn = call.turn()
    turn.run()
    assert [c.group for c in turn.handle.chunks] == [1000, 1000, 2000, 2000]


def test_a_dialog_without_settle_turn_is_told_what_was_heard_only_when_cut(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("하나 둘")], settle=False)
    turn = call.turn()
    turn.run()
    assert call.conv.heard == []
    call2 = Call(tmp_path, monkeypatch, [Say("하나 둘")], settle=False)
    turn2 = call2.turn()
    orig = call2.voice.queue

    def queue_then_cut(handle, *a, **k):
        orig(handle, *a, **k)
        handle.cut(call2.clock.t)
    call2.voice.queue = queue_then_cut  # type: ignore[method-assign]
    turn2.run()
    assert call2.conv.heard == [("하나 둘", "")]
    assert call2.agent_turns()[0]["interrupted"] is True


def test_llm_usage_is_stored_with_the_turn(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")], usage={"prompt_tokens": 10})
    call.turn().run()
    assert call.agent_turns()[0]["detail"]["llm_usage"] == {"prompt_tokens": 10}
    call = Call(tmp_path, monkeypatch, [Say("네")], usage={})
    call.turn().run()
    assert "llm_usage" not in call.agent_turns()[0]["detail"]


@pytest.mark.parametrize("outcome,step", [(Escalate("caller_requested", "요약", 2),
                                           ("escalate", ("caller_requested", "요약", 2), {})),
                                          (EndCall(), ("hang_up",))])
def test_the_dialogs_outcome_follows_what_was_said(tmp_path, monkeypatch, outcome, step):
    call = Call(tmp_path, monkeypatch, [Say("연결해 드리겠습니다"), outcome])
    turn = call.turn()
    turn.run()
    assert call.steps == [step]
    assert call.voice.waits and call.voice.waits[-1][0] == "reply"  # after the words played out


def test_an_outcome_with_nothing_said_records_no_agent_turn(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Escalate("caller_requested")])
    turn = call.turn()
    turn.run()
    assert call.agent_turns() == [] and len(call.caller_turns()) == 1
    assert call.steps == [("escalate", ("caller_requested", "", 5), {})]
    assert call.stats.turns == []
    assert call.conv.settled == [(turn.turn_id, "")]


def _logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.call.turn"]


def test_a_failing_dialog_hands_off_with_agent_error(tmp_path, monkeypatch, caplog):
    call = Call(tmp_path, monkeypatch, [RuntimeError("boom")])
    turn = call.turn()
    turn.run()
    assert _logged(caplog) == [f"call {UUID}: turn failed"]
    assert call.steps == [("escalate", ("agent_error",), {"failure": True})]
    assert turn.done and turn.handle.synthesis_done


def test_a_dialog_past_the_turn_timeout_hands_off_with_agent_timeout(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="agent.call.turn")
    call = Call(tmp_path, monkeypatch, [Say("네")], turn_timeout_s=0.05)
    call.conv.gate = threading.Event()  # the step never answers in time
    turn = call.turn()
    try:
        turn.run()
    finally:
        call.conv.gate.set()
    assert _logged(caplog) == [f"call {UUID}: a dialog step is still running; its writes are fenced off",
                               f"call {UUID}: dialog or TTS timed out"]
    assert call.steps == [("escalate", ("agent_timeout",), {"failure": True})]


def test_a_cancelled_turn_stops_queueing_and_neither_hands_off_nor_hangs_up(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("하나"), Say("둘"), EndCall()])
    turn = call.turn()
    _cancel_after_first_queue(call, turn)
    turn.run()
    assert len(call.conn.playbacks()) == 1 and call.steps == [] and call.voice.waits == []
    assert call.agent_turns()[0]["text"] == "하나"


def test_a_cancelled_turn_that_fails_stays_silent(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [RuntimeError("late")])
    turn = call.turn()
    turn.cancel()
    turn.run()
    assert call.steps == []


def _cancel_after_first_queue(call: Call, turn: Turn) -> None:
    """The caller barges in just as the first chunk is queued."""
    orig = call.voice.queue

    def queue_and_cancel(handle, *a, **k):
        orig(handle, *a, **k)
        turn.cancel()
    call.voice.queue = queue_and_cancel  # type: ignore[method-assign]



def test_a_cancel_during_tts_stops_the_sentence(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("길게")], parts=3)
    turn = call.turn()
    _cancel_after_first_queue(call, turn)
    turn.run()
    assert len(call.conn.playbacks()) == 1


def test_a_filler_from_the_dialog_plays_only_over_silence(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Filler("잠시만요, 찾아볼게요."), Say("찾았습니다."), Filler("또요")])
    turn = call.turn()
    turn.run()
    fillers = [t for t in call.agent_turns() if t["source"] == "filler"]
    assert [f["text"] for f in fillers] == ["잠시만요, 찾아볼게요."]  # the second came after words
    call = Call(tmp_path, monkeypatch, [Filler("잠시만요.")])
    call.voice.play_file("인사", call.voice.prompt_path("인사"), kind="greeting", interruptible=False)
    call.turn().run()
    assert [t for t in call.agent_turns() if t["source"] == "filler"] == []  # never queued behind audio


def test_a_slow_dialog_gets_the_slow_fillers_in_turn_at_most_twice(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")], filler_after_s=0.01)
    call.conv.gate = threading.Event()
    turn = call.turn()
    g = gevent.spawn(turn.run)
    _until(lambda: len(call.store.events("slow_step_filler")) == 2)
    gevent.sleep(0.05)
    call.conv.gate.set()
    g.join(5)
    fillers = [t["text"] for t in call.agent_turns() if t["source"] == "filler"]
    assert fillers == ["잠시만요.", "조금만요."]
    assert [e["detail"] for e in call.store.events("slow_step_filler")] == [{"waited_ms": 10, "step": "dialog"}] * 2
    assert ("filler", pytest.approx(1.0 + 1.0, abs=0.01)) in [(k, w) for k, w in call.voice.waits]


def test_no_slow_filler_over_audio_already_playing(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")], filler_after_s=0.01)
    call.voice.play_file("인사", call.voice.prompt_path("인사"), kind="greeting", interruptible=False)
    call.conv.gate = threading.Event()
    g = gevent.spawn(call.turn().run)
    gevent.sleep(0.1)
    assert call.store.events("slow_step_filler") == []
    call.conv.gate.set()
    g.join(5)


def test_a_held_reply_is_queued_only_when_released(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Filler("잠시만요."), Say("네, 배송 조회 말씀이시군요.")])
    turn = call.turn({"text": "배송 조회", "utterance": 3, "eos_wait_ms": 0}, held=True)
    g = gevent.spawn(turn.run)
    _until(lambda: call.conv.closed)
    gevent.sleep(0.01)
    assert call.conn.playbacks() == [] and call.store.turns() == [] and not turn.done
    assert turn.handle.synthesis_done  # all written: only the end of turn is awaited
    call.clock.t += 0.25
    turn.release({"text": "배송 조회.", "utterance": 3, "eos_wait_ms": 260, "engine": "vosk"})
    g.join(5)
    assert turn.done and len(call.conn.playbacks()) == 1  # the filler stays unsaid: the reply is ready
    assert call.conn.playbacks()[0].endswith(f"/spool/{turn.handle.utt_id}-1-0.wav")
    assert [c.group for c in turn.handle.chunks] == [1000] and turn.greenlet is g
    (caller,) = call.caller_turns()
    assert caller["text"] == "배송 조회" and caller["detail"]["preemptive"] is True and caller["eos_wait_ms"] == 260
    (agent,) = call.agent_turns()
    # Prepared from 100.0 (filler step, sentence step, TTS: 1.0 s), released 0.25 s after it was ready.
    assert agent["detail"]["preemptive_lead_ms"] == pytest.approx(1250.0)
    assert agent["dialog_ms"] == pytest.approx(800.0)  # from the preview, not from the release
    assert agent["first_audio_ms"] is not None and agent["detail"]["overhead_ms"] == pytest.approx(0.0)


def test_a_held_reply_released_before_its_audio_is_written_says_its_filler(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Filler("잠시만요."), Say("네")])
    call.conv.gate, call.conv.gate_at = threading.Event(), 1
    turn = call.turn({"text": "배송", "utterance": 3}, held=True)
    g = gevent.spawn(turn.run)
    _until(lambda: turn._pending_filler is not None)
    assert call.store.turns() == []
    turn.release({"text": "배송", "utterance": 3})
    call.conv.gate.set()
    g.join(5)
    assert [t["text"] for t in call.agent_turns() if t["source"] == "filler"] == ["잠시만요."]


def test_a_discarded_held_reply_leaves_no_trace(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")])
    turn = call.turn({"text": "배송", "utterance": 3}, held=True)
    g = gevent.spawn(turn.run)
    _until(lambda: call.conv.closed)
    turn.discard()
    g.join(5)
    assert call.conn.playbacks() == [] and call.store.turns() == [] and call.steps == []
    assert call.conv.discarded == [turn.turn_id] and call.conv.settled == []


def test_releasing_a_turn_that_was_not_held_changes_only_its_data(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [])
    turn = call.turn({"text": "배송", "utterance": 1})
    call.clock.t = 120.0
    turn.release({"text": "다른 말", "utterance": 1, "asr_ms": 5})
    assert turn.text == "배송" and turn.data["asr_ms"] == 5 and turn.t_in == 120.0
    assert call.store.turns() == []


def test_a_turn_without_an_utterance_number_has_none(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [])
    assert call.turn({"text": "1234", "source": "dtmf", "utterance": "7"}).utterance is None
    assert call.turn({"text": "1234", "utterance": 7}).utterance == 7


def test_a_turn_without_a_source_is_speech_and_its_timings_are_kept_to_two_decimals(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [ToolUsed("search", True, 1.0), Say("네")], step_s=0.4001234,
                store_step=0.0050123)
    turn = call.turn({"text": "배송", "utterance": 1, "asr_wait_ms": 120})
    turn.run()
    assert call.conv.asked == [("배송", "asr")]
    (caller,) = call.caller_turns()
    assert caller["source"] == "asr" and caller["detail"] == {"utterance": 1, "asr_wait_ms": 120}
    assert caller["started_at"]
    (agent,) = call.agent_turns()
    # two dialog steps (800.25 ms) and the TTS (200 ms) are the engines'; the caller's row is the controller's
    assert agent["dialog_ms"] == pytest.approx(805.26, abs=1e-9)
    assert agent["detail"]["overhead_ms"] == pytest.approx(5.01, abs=1e-9)
    assert agent["started_at"] and agent["ended_at"]


def test_without_stats_the_turn_is_still_recorded(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")], no_stats=True)
    call.turn().run()
    assert len(call.agent_turns()) == 1 and call.stats.turns == []


def test_each_spoken_piece_with_text_is_its_own_group(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("하나. 둘. 셋.")], parts=3, text_each=True)
    turn = call.turn()
    turn.run()
    assert [c.group for c in turn.handle.chunks] == [1000, 1001, 1002]


def test_a_cancel_mid_dialog_closes_it_inside_the_turn_scope(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("하나"), Say("둘")])
    turn = call.turn()
    _cancel_after_first_queue(call, turn)
    turn.run()
    assert call.conv.closed and call.conv.closed_scope == turn.turn_id


def test_a_cancel_during_tts_closes_the_engines_stream(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("길게")], parts=3)
    turn = call.turn()
    _cancel_after_first_queue(call, turn)
    turn.run()
    assert call.speaker.closed == 1 and len(call.conn.playbacks()) == 1
    assert call.speaker.closed_in is not threading.current_thread()  # closed from the pool, not left to the GC


def test_a_discarded_held_reply_neither_hangs_up_nor_needs_the_dialogs_discard(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("안녕히 계세요"), EndCall()], discard=False)
    turn = call.turn({"text": "끊을게요", "utterance": 3}, held=True)
    g = gevent.spawn(turn.run)
    _until(lambda: call.conv.closed)
    turn.discard()
    g.join(5)
    assert call.steps == [] and call.conn.playbacks() == [] and call.store.turns() == []


def test_a_held_reply_released_with_nothing_written_says_no_filler(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")])
    call.conv.gate = threading.Event()
    turn = call.turn({"text": "배송", "utterance": 3}, held=True)
    g = gevent.spawn(turn.run)
    gevent.sleep(0.01)
    turn.release({"text": "배송", "utterance": 3})
    assert [t for t in call.agent_turns() if t["source"] == "filler"] == []
    call.conv.gate.set()
    g.join(5)
    assert len(call.conn.playbacks()) == 1


def test_a_slow_tts_gets_a_filler_that_says_so(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")], filler_after_s=0.6)
    call.speaker.gate = threading.Event()
    g = gevent.spawn(call.turn().run)
    _until(lambda: call.store.events("slow_step_filler"))
    call.speaker.gate.set()
    g.join(5)
    assert call.store.events("slow_step_filler")[0]["detail"] == {"waited_ms": 600, "step": "tts"}


def test_a_cancelled_turn_gets_no_slow_filler(tmp_path, monkeypatch):
    call = Call(tmp_path, monkeypatch, [Say("네")], filler_after_s=0.01)
    call.conv.gate = threading.Event()
    turn = call.turn()
    g = gevent.spawn(turn.run)
    gevent.sleep(0)
    turn.cancel()
    gevent.sleep(0.1)
    assert call.store.events("slow_step_filler") == []
    call.conv.gate.set()
    g.join(5)


def test_a_keypad_turn_reaches_the_dialog_as_keys(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="agent.call.turn")
    call = Call(tmp_path, monkeypatch, [Say("확인했습니다")])
    call.turn({"text": "1234", "source": "dtmf"}).run()
    assert call.conv.asked == [("1234", "dtmf")]
    (caller,) = call.caller_turns()
    assert caller["source"] == "dtmf" and caller["text"] == "[키패드 입력]"
    assert _logged(caplog) == []  # a dialog closed in time logs nothing
