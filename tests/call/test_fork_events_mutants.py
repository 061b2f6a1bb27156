"""The speech worker's messages routed one at a time (CUSTOM `mod_audio_fork::*` bodies as the worker sends them,
docs/architecture.md "Turn-taking") to what the call does: the pause and break on the wire, the records, the turn
started, held, released or dropped, and a worker counted as lost. Thresholds come from the call's config and the
tests read them from there, so a tuned threshold keeps them true."""

from __future__ import annotations

from typing import Any

import pytest

from agent.call.actions.listen import ForkLiveness
from agent.call.actions.say import Voice
from agent.call.channel import ChannelInfo
from agent.call.fork_events import REPROMPT, ForkEvents
from agent.call.record import CallRecord
from agent.call.turns.barge_in import Action, BargeIn, BargeInSettings
from agent.call.turns.idle import IdlePolicy
from agent.config import parse_config
from tests.call.fast_fakes import UUID, Clock, FakeConn, FakePrompts, FakeStore


class FakeTurn:
    def __init__(self, data: dict[str, Any], held: bool) -> None:
        self.data, self.held = data, held
        self.done = False
        self.has_audio = False
        self.discarded = False
        self.released: dict[str, Any] | None = None

    @property
    def utterance(self) -> int | None:
        return self.data.get("utterance")

    @property
    def text(self) -> str:
        return self.data.get("text", "")

    def discard(self) -> None:
        self.discarded = True

    def release(self, final: dict[str, Any]) -> None:
        self.released = final


class Host:
    """The call as ForkEvents sees it (its ForkHost protocol): the real voice, record and pure strategies on a
    fake socket; the call-level steps (act, turns, escalate) are written down."""

    def __init__(self, tmp_path, **controller: Any) -> None:
        self.cfg = parse_config({"controller": controller}).controller
        self.t = 100.0
        self.state = "active"
        self.conn, self.store = FakeConn(), FakeStore()
        self.record = CallRecord(self.store, ChannelInfo(uuid=UUID))  # type: ignore[arg-type]
        self.voice = Voice(self.conn, UUID, 8000, FakePrompts(tmp_path), self.record,  # type: ignore[arg-type]
                           clock=Clock(0.0))
        self.barge = BargeIn(BargeInSettings(max_pause_s=self.cfg.barge_in_max_pause_s))
        self.idle = IdlePolicy(self.cfg.no_input_timeout_s, self.cfg.no_input_prompts)
        self.liveness = ForkLiveness(self.cfg.fork_heartbeat_timeout_s)
        self.turn: FakeTurn | None = None
        self.preview: FakeTurn | None = None
        self.steps: list[tuple[Any, ...]] = []
        self.fork = ForkEvents(self)  # type: ignore[arg-type]

    def clock(self) -> float:
        return self.t

    def act(self, action: Action, why: str, **detail: Any) -> None:
        self.steps.append(("act", action, why, detail))

    def start_turn(self, data: dict[str, Any], *, held: bool = False) -> FakeTurn:
        turn = FakeTurn(data, held)
        if held:
            self.preview = turn
        else:
            self.turn = turn
        self.steps.append(("turn", held, data))
        return turn

    def cancel_turn(self) -> None:
        self.steps.append(("cancel",))

    def escalate(self, reason: str, summary: str = "", priority: int = 5, *, failure: bool = False) -> None:
        self.steps.append(("escalate", reason, failure))

    def worker_lost(self, reason: str) -> None:
        self.steps.append(("lost", reason))

    # the worker's messages
    def json(self, event: str, **body: Any) -> None:
        self.fork.on_custom("mod_audio_fork::json", {"event": event, **body})

    def final(self, text: str, **body: Any) -> None:
        self.fork.on_custom("mod_audio_fork::transcription", {"text": text, **body})

    def reply(self, interruptible: bool = True) -> None:
        """A reply chunk queued on the channel (what the caller hears or is about to)."""
        handle = self.voice.new_handle("reply", interruptible)
        self.voice.queue(handle, "안내해 드리겠습니다", "/tmp/r.wav", 3.0)


@pytest.fixture
def h(tmp_path) -> Host:
    return Host(tmp_path)


# connection and liveness ----------------------------------------------------------------------------------


def test_connect_is_recorded_and_starts_the_heartbeat_clock(h):
    h.fork.on_custom("mod_audio_fork::connect", {})
    assert h.fork.connected and h.store.kinds() == ["fork_connected"]
    limit = h.cfg.fork_heartbeat_timeout_s
    h.fork.tick(h.t + limit, h.t)
    assert h.steps == []
    h.fork.tick(h.t + limit + 0.1, h.t)
    assert h.steps == [("lost", f"no heartbeat for {limit + 0.1:.1f} s")]


def test_heartbeats_with_audio_keep_the_worker_alive(h):
    h.fork.on_custom("mod_audio_fork::connect", {})
    limit = h.cfg.fork_heartbeat_timeout_s
    h.t += limit
    h.json("heartbeat", seq=1, audio_ms=2000)
    h.fork.tick(h.t + limit, 100.0)
    assert h.steps == []
    h.t += limit
    h.json("heartbeat", seq=2, audio_ms=2000)  # beating, but no audio has arrived since
    h.fork.tick(h.t + 0.2, 100.0)
    assert h.steps == [("lost", f"no audio progress for {limit + 0.2:.1f} s")]


@pytest.mark.parametrize("subclass,body,reason", [
    ("mod_audio_fork::connect_failed", {"reason": "refused"}, "connect_failed: refused"),
    ("mod_audio_fork::error", {}, "error"),
    ("mod_audio_fork::disconnect", {"reason": "closed"}, "disconnect: closed"),
])
def test_a_fork_that_fails_loses_the_worker_only_while_the_call_is_active(h, subclass, body, reason):
    h.fork.on_custom(subclass, body)
    assert h.steps == [("lost", reason)]
    h.steps.clear()
    h.state = "escalating"
    h.fork.on_custom(subclass, body)
    assert h.steps == []


def test_no_connect_within_the_timeout_loses_the_worker(h):
    limit = h.cfg.fork_connect_timeout_s
    h.fork.tick(100.0 + limit, 100.0)
    assert h.steps == []
    h.fork.tick(100.0 + limit + 0.01, 100.0)
    assert h.steps == [("lost", "no connect from the worker")]


def test_a_buffer_overrun_is_recorded(h):
    h.fork.on_custom("mod_audio_fork::buffer_overrun", {})
    assert h.store.kinds() == ["fork_buffer_overrun"] and h.steps == []


# barge-in -------------------------------------------------------------------------------------------------


def test_an_onset_over_an_interruptible_reply_pauses_it(h):
    h.reply()
    h.idle.used = 1
    h.json("speech_onset", utterance=3)
    assert h.conn.apis() == [f"uuid_fileman {UUID} pause"]
    assert h.store.events("barge_in_paused")[0]["detail"] == {"utterance": 3, "paused": True}
    assert h.idle.last_activity == h.t and h.idle.used == 0  # the caller spoke: the silence clock restarts
    assert h.barge.armed


def test_an_onset_over_the_greeting_or_in_silence_pauses_nothing(h):
    h.json("speech_onset", utterance=1)
    h.reply(interruptible=False)
    h.json("speech_onset", utterance=2)
    assert h.conn.apis() == [] and not h.barge.armed and h.store.events("barge_in_paused") == []


def test_an_onset_after_the_call_left_the_agent_pauses_nothing(h):
    h.reply()
    h.state = "escalating"
    h.json("speech_onset", utterance=1)
    assert h.conn.apis() == [] and not h.barge.armed


def test_speech_started_without_an_onset_arms_one_and_marks_the_caller_speaking(h):
    h.reply()
    h.json("speech_started", utterance="x")  # not an int: the utterance is unknown
    assert h.fork.caller_speaking and h.barge.armed and h.barge.utterance == -1
    assert h.idle.last_activity == h.t
    h.json("speech_started", utterance=5)  # already armed: no second pause
    assert h.conn.apis() == [f"uuid_fileman {UUID} pause"]


def test_continuing_voice_confirms_the_barge_in(h):
    h.reply()
    h.json("speech_onset", utterance=1)
    confirm = h.barge.settings.confirm_ms
    h.json("speech_continuing", utterance=1, voiced_ms=confirm)
    assert h.steps == [("act", Action.BREAK, "voiced", {"voiced_ms": confirm})]


def test_voice_over_a_reply_that_started_after_it_breaks_the_reply(h):
    h.reply()
    h.json("speech_continuing", utterance=1, voiced_ms=10)  # no onset armed it: the reply began later
    assert h.steps == [("act", Action.BREAK, "voiced", {"voiced_ms": 10.0})]
    h.steps.clear()
    h.state = "escalating"
    h.json("speech_continuing", utterance=1, voiced_ms=10)
    assert h.steps == []


def test_voice_over_an_uninterruptible_reply_breaks_nothing(h):
    h.reply(interruptible=False)
    h.json("speech_continuing", utterance=1, voiced_ms=900)
    assert h.steps == []


def test_voice_over_a_reply_not_yet_audible_cancels_it(h):
    h.start_turn({"text": "배송"})
    h.steps.clear()
    h.json("speech_continuing", utterance=2, voiced_ms=700)
    assert h.steps == [("cancel",)]
    assert h.store.events("barge_in")[0]["detail"] == {"why": "before_audio", "voiced_ms": 700.0}


@pytest.mark.parametrize("done,has_audio,state", [(True, False, "active"), (False, True, "active"),
                                                  (False, False, "escalating")])
def test_voice_leaves_alone_a_turn_done_audible_or_of_a_call_leaving(h, done, has_audio, state):
    turn = h.start_turn({"text": "배송"})
    turn.done, turn.has_audio, h.state = done, has_audio, state
    h.steps.clear()
    h.json("speech_continuing", utterance=2, voiced_ms=700)
    assert h.steps == [] and h.store.events("barge_in") == []


@pytest.mark.parametrize("kind", ["speech_paused", "speech_dropped"])
def test_a_short_burst_resumes_the_reply(h, kind):
    h.reply()
    h.json("speech_started", utterance=4)
    h.json(kind, utterance=4, voiced_ms=120)
    assert h.steps == [("act", Action.RESUME, kind, {"voiced_ms": 120.0})]
    assert h.fork.caller_speaking is (kind == "speech_paused")


def test_a_short_burst_with_nothing_armed_does_nothing(h):
    h.json("speech_paused", utterance=4)
    assert h.steps == []


def test_a_resumed_bursts_short_final_is_a_backchannel_not_a_turn(h):
    h.reply()
    h.json("speech_onset", utterance=4)
    h.json("speech_dropped", utterance=4, voiced_ms=100)
    h.steps.clear()
    h.final("어디", utterance=4)  # two syllables, not in the backchannel list: the burst that resumed
    assert h.steps == [] and h.store.events("backchannel")[0]["detail"] == {"text": "어디"}
    h.final("어디", utterance=5)  # another utterance: words over the reply
    assert h.steps[0] == ("act", Action.BREAK, "words", {})


def test_a_partial_with_words_confirms_the_barge_in_and_a_backchannel_does_not(h):
    h.reply()
    h.json("speech_onset", utterance=1)
    h.fork.on_custom("mod_audio_fork::transcription", {"final": False, "text": "네"})
    assert h.steps == []
    h.fork.on_custom("mod_audio_fork::transcription", {"final": False, "text": "잠깐만요"})
    assert h.steps == [("act", Action.BREAK, "words", {})]


# the end of a caller turn ---------------------------------------------------------------------------------


def test_a_final_starts_a_turn_and_resets_the_waits(h):
    h.json("speech_started", utterance=1)
    h.json("speech_ended", utterance=1)
    h.fork.asr_errors = 1
    h.idle.used = 2
    h.t += 1
    h.final(" 배송 조회요 ", utterance=1)  # no "final" key: a transcription is final unless it says not
    assert h.steps == [("turn", False, {"text": " 배송 조회요 ", "utterance": 1})]
    assert not h.fork.caller_speaking and h.fork.asr_errors == 0 and h.idle.used == 0 and h.idle.last_activity == h.t
    h.fork.on_custom("mod_audio_fork::connect", {})
    h.json("heartbeat", audio_ms=1)
    h.fork.tick(h.t + h.cfg.filler_after_s, h.t)  # the final came: no filler is due
    assert h.voice.playout.handles == {} and h.store.events("slow_step_filler") == []


def test_an_empty_final_or_one_after_the_call_left_starts_nothing(h):
    h.final("   ")
    h.state = "escalating"
    h.final("배송 조회요")
    assert h.steps == []


def test_a_backchannel_over_the_reply_starts_no_turn_and_drops_the_preview(h):
    h.reply()
    h.json("turn_preview", utterance=2, text="네")
    assert h.preview is None  # a backchannel is never prepared
    h.json("turn_preview", utterance=2, text="배송이요")
    preview = h.preview
    h.final("네 네", utterance=2)
    assert h.store.events("backchannel")[0]["detail"] == {"text": "네 네"}
    assert preview.discarded and h.preview is None
    assert [s[0] for s in h.steps] == ["turn"]  # only the preview's own held start


def test_a_backchannel_final_while_armed_resumes_and_drops_the_preview(h):
    h.reply()
    h.json("speech_onset", utterance=2)
    h.preview = FakeTurn({"text": "배송", "utterance": 2}, True)
    preview = h.preview
    h.final("네", utterance=2)
    assert h.steps == [("act", Action.RESUME, "backchannel", {})]
    assert preview.discarded and h.preview is None


def test_a_final_with_words_while_armed_breaks_and_starts_the_turn(h):
    h.reply()
    h.json("speech_onset", utterance=2)
    h.final("반품할게요", utterance=2)
    assert h.steps[0] == ("act", Action.BREAK, "words", {})
    assert h.steps[1][0] == "turn" and h.steps[1][2]["text"] == "반품할게요"


def test_words_over_an_uninterruptible_reply_break_nothing(h):
    h.reply(interruptible=False)
    h.final("반품할게요", utterance=2)
    assert [s[0] for s in h.steps] == ["turn"]


def test_a_preview_is_held_and_released_by_the_final_with_the_same_words(h):
    h.json("turn_preview", utterance=7, text=" 배송 조회 부탁드려요 ", eos_wait_ms=240)
    assert h.steps == [("turn", True, {"event": "turn_preview", "utterance": 7, "text": "배송 조회 부탁드려요",
                                       "eos_wait_ms": 240, "source": "asr"})]
    preview = h.preview
    h.steps.clear()
    final = {"text": "배송 조회, 부탁드려요!", "utterance": 7, "eos_wait_ms": 260}
    h.fork.on_custom("mod_audio_fork::transcription", {"final": True, **final})
    assert h.steps == [("cancel",)]  # the turn before it gives way; no new turn starts
    assert h.turn is preview and h.preview is None and preview.released == {"final": True, **final}


@pytest.mark.parametrize("utterance,text", [(8, "배송 조회 부탁드려요"), (7, "반품 부탁드려요")])
def test_a_final_of_another_utterance_or_other_words_discards_the_preview(h, utterance, text):
    h.json("turn_preview", utterance=7, text="배송 조회 부탁드려요")
    preview = h.preview
    h.steps.clear()
    h.final(text, utterance=utterance)
    assert preview.discarded and preview.released is None and h.preview is None
    assert h.steps == [("turn", False, {"text": text, "utterance": utterance})]


def test_a_discarded_preview_is_never_released(h):
    h.json("turn_preview", utterance=7, text="배송")
    h.preview.discarded = True
    h.final("배송", utterance=7)
    assert h.steps[-1][0] == "turn" and h.steps[-1][1] is False


def test_a_new_preview_replaces_the_old_one(h):
    h.json("turn_preview", utterance=1, text="배송")
    first = h.preview
    h.json("turn_preview", utterance=1, text="배송 조회")
    assert first.discarded and h.preview is not first and h.preview.text == "배송 조회"


@pytest.mark.parametrize("why", ["off", "not_active", "empty", "armed"])
def test_no_preview_when_off_leaving_empty_or_during_a_barge_in(tmp_path, why):
    h = Host(tmp_path, preemptive_reply=why != "off")
    if why == "not_active":
        h.state = "escalating"
    if why == "armed":
        h.reply()
        h.json("speech_onset", utterance=1)
    h.json("turn_preview", utterance=1, text="" if why == "empty" else "배송 조회요")
    assert h.preview is None and [s for s in h.steps if s[0] == "turn"] == []


def test_turn_resumed_drops_only_its_own_utterances_preview(h):
    h.json("turn_preview", utterance=3, text="배송")
    preview = h.preview
    h.json("turn_resumed", utterance=4)
    assert h.preview is preview and not preview.discarded
    h.json("turn_resumed", utterance=3)
    assert h.preview is None and preview.discarded
    h.json("turn_resumed", utterance=3)  # nothing left to drop


# the recogniser -------------------------------------------------------------------------------------------


def test_a_retryable_asr_error_reprompts_and_a_second_hands_off(h):
    h.json("speech_ended", utterance=1)
    h.json("asr_error", reason="timeout", retryable=True)
    assert h.store.events("asr_error")[0]["detail"] == {"reason": "timeout", "retryable": True}
    assert [t["text"] for t in h.store.turns()] == [REPROMPT] and h.steps == []
    h.json("asr_error", reason="timeout", retryable=True)
    assert h.steps == [("escalate", "asr_failed", True)]


def test_an_asr_error_that_cannot_be_retried_hands_off_at_once(h):
    h.json("asr_error", reason="model gone")
    assert h.steps == [("escalate", "asr_failed", True)] and h.store.turns() == []


def test_an_asr_error_after_the_call_left_is_only_recorded(h):
    h.state = "escalating"
    h.json("asr_error", reason="x", retryable=True)
    assert h.steps == [] and h.store.turns() == [] and h.fork.asr_errors == 1


def test_a_slow_recogniser_gets_one_filler_while_the_line_is_silent(h):
    h.fork.on_custom("mod_audio_fork::connect", {})
    h.json("speech_ended", utterance=1)
    wait = h.cfg.filler_after_s
    h.json("heartbeat", audio_ms=1)
    h.fork.tick(h.t + wait - 0.01, h.t)
    assert h.store.turns() == []
    h.fork.tick(h.t + wait, h.t)
    (turn,) = h.store.turns()
    assert turn["text"] == h.cfg.slow_filler and turn["source"] == "filler"
    assert h.store.events("slow_step_filler")[0]["detail"] == {"step": "asr"}
    h.fork.tick(h.t + wait + 1, h.t)
    h.voice.break_all()  # the filler has played: the line is silent again
    h.fork.tick(h.t + wait + 0.01, h.t)
    assert len(h.store.turns()) == 1  # once per utterance


def test_no_asr_filler_over_audio_already_playing_or_after_an_asr_error(h):
    h.fork.on_custom("mod_audio_fork::connect", {})
    h.json("heartbeat", audio_ms=1)
    h.json("speech_ended", utterance=1)
    h.reply()
    h.fork.tick(h.t + h.cfg.filler_after_s, h.t)
    assert h.store.turns() == []
    h.json("asr_error", reason="x", retryable=True)
    h.voice.break_all()
    turns = len(h.store.turns())
    h.fork.tick(h.t + h.cfg.filler_after_s, h.t)
    assert len(h.store.turns()) == turns  # the error already said something


def test_a_new_utterance_allows_a_new_asr_filler(h):
    h.fork.on_custom("mod_audio_fork::connect", {})
    h.json("heartbeat", audio_ms=1)
    h.json("speech_ended", utterance=1)
    h.fork.tick(h.t + h.cfg.filler_after_s, h.t)
    h.voice.break_all()
    h.json("speech_ended", utterance=2)
    h.fork.tick(h.t + h.cfg.filler_after_s, h.t)
    assert len(h.store.turns()) == 2


def test_an_unknown_message_changes_nothing(h):
    h.fork.on_custom("mod_audio_fork::something", {"event": "speech_onset"})
    h.json("nonsense")
    assert h.steps == [] and h.store.kinds() == []


# defaults of the worker's messages -------------------------------------------------------------------------


def test_a_new_router_has_no_caller_speaking_and_speech_ended_clears_it(h):
    assert not h.fork.caller_speaking and not h.fork.connected
    h.json("speech_started", utterance=1)
    h.json("speech_ended", utterance=1)
    assert not h.fork.caller_speaking


def test_a_short_final_over_the_reply_breaks_it_when_no_burst_was_resumed(h):
    h.reply()
    h.final("어디", utterance=1)  # utterance 1 never resumed anything
    assert h.steps[0] == ("act", Action.BREAK, "words", {})
    h.steps.clear()
    h.reply()
    h.final("어디")  # a final without an utterance number is never the resumed burst
    assert h.steps[0] == ("act", Action.BREAK, "words", {})


def test_turn_resumed_of_utterance_zero_keeps_another_utterances_preview(h):
    h.json("turn_preview", utterance=3, text="배송")
    h.json("turn_resumed", utterance=0)
    assert h.preview is not None and not h.preview.discarded


def test_an_empty_final_drops_any_preview(h):
    h.json("turn_preview", utterance=7, text="배송")
    preview = h.preview
    h.final("", utterance=7)
    assert preview.discarded and h.preview is None


def test_messages_without_text_say_nothing(h):
    h.final("", utterance=1)
    h.fork.on_custom("mod_audio_fork::transcription", {"utterance": 2})  # no text at all
    h.json("turn_preview", utterance=3)
    assert h.steps == [] and h.preview is None
    h.reply()
    h.json("speech_onset", utterance=4)
    h.fork.on_custom("mod_audio_fork::transcription", {"final": False})
    assert h.steps == []


def test_an_asr_error_without_a_reason_is_recorded_with_an_empty_one(h):
    h.json("asr_error", retryable=True)
    assert h.store.events("asr_error")[0]["detail"] == {"reason": "", "retryable": True}


def test_a_burst_without_voiced_ms_is_recorded_as_zero(h):
    h.reply()
    h.json("speech_onset", utterance=1)
    h.json("speech_dropped", utterance=1)
    assert h.steps == [("act", Action.RESUME, "speech_dropped", {"voiced_ms": 0.0})]


def test_audio_progress_counts_from_the_heartbeat_that_brought_more_audio(h):
    h.fork.on_custom("mod_audio_fork::connect", {})
    limit = h.cfg.fork_heartbeat_timeout_s
    h.json("heartbeat", seq=1)  # no audio_ms yet: nothing received
    h.t += limit / 2
    h.json("heartbeat", seq=2, audio_ms=1)  # the first audio: progress from here
    h.t += limit / 2
    h.json("heartbeat", seq=3, audio_ms=1)  # beating, no more audio
    h.fork.tick(100.0 + limit / 2 + limit - 0.01, 100.0)
    assert h.steps == []
    h.fork.tick(100.0 + limit / 2 + limit + 0.01, 100.0)
    assert h.steps and h.steps[0][1].startswith("no audio progress")
