"""Preemptive replies, driven event by event (no sockets): a reply prepared on `turn_preview` is held until the
final transcript of the same utterance confirms the end of turn, and thrown away without a trace when the
caller goes on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import pytest

from agent.call.actions.say import Voice
from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.call.session import CallDeps, CallSession
from agent.config import parse_config
from tests.call.harness import EchoConversation

UUID = "11111111-2222-3333-4444-555555555555"


class FakeConn:
    """Records what the controller would send; every command succeeds."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def sendmsg(self, app: str, arg: str = "", **_: Any) -> str:
        self.sent.append((app, arg))
        return "+OK"

    def api(self, command: str, **_: Any) -> str:
        self.sent.append(("api", command))
        return "+OK"

    def playbacks(self) -> list[str]:
        return [arg for app, arg in self.sent if app == "playback"]


class FakeStore:
    def __init__(self) -> None:
        self.ops: list[tuple[str, dict[str, Any]]] = []

    def submit(self, op: str, **fields: Any) -> None:
        self.ops.append((op, fields))

    def turns(self) -> list[dict[str, Any]]:
        return [f for op, f in self.ops if op == "turn"]


@dataclass
class Spoken:
    text: str
    path: Path
    duration_s: float
    tts_text: str = ""


class FakeSpeaker:
    def speak(self, call_id: str, utt_id: str, text: str, rate: int) -> Iterator[Spoken]:
        yield Spoken(text, Path(f"/spool/{utt_id}.wav"), 1.0)


@pytest.fixture
def session() -> CallSession:
    cfg = parse_config({"controller": {"fork_heartbeat_timeout_s": 0}})
    conn, store = FakeConn(), FakeStore()
    deps = CallDeps(cfg=cfg, policy=None, speaker=FakeSpeaker(), prompts=None, store=store)  # type: ignore[arg-type]
    s = CallSession(conn, deps)  # type: ignore[arg-type]
    s.channel = ChannelInfo(uuid=UUID, read_rate=8000)
    s.record = CallRecord(store, s.channel)  # type: ignore[arg-type]
    s.conv = EchoConversation()
    s.voice = Voice(conn, UUID, 8000, None, s.record)  # type: ignore[arg-type]
    s.state = "active"
    return s


def _json(s: CallSession, **body: Any) -> None:
    s.fork.on_custom("mod_audio_fork::json", body)


def _final(s: CallSession, utterance: int, text: str) -> None:
    s.fork.on_custom("mod_audio_fork::transcription", {"final": True, "utterance": utterance, "text": text,
                                                       "eos_wait_ms": 240, "eot": {"reason": "sentence_end"}})


def test_a_preview_is_held_until_the_final_confirms_it(session):
    _json(session, event="turn_preview", utterance=1, text="배송 조회 부탁드려요")
    gevent.sleep(0.3)  # the held turn has generated and synthesized its whole reply by now
    assert session.fork.host.preview is not None
    assert session.conn.playbacks() == []  # nothing reaches the caller before the end of turn
    _final(session, 1, "배송 조회 부탁드려요.")
    gevent.sleep(0.1)
    played = session.conn.playbacks()
    assert len(played) == 2 and all("utt_id=r" in p for p in played)
    callers = [t for t in session.deps.store.turns() if t["speaker"] == "caller"]
    assert [c["text"] for c in callers] == ["배송 조회 부탁드려요"]  # recorded once, when confirmed
    assert callers[0]["detail"]["preemptive"] is True
    assert session.conv.received == [("배송 조회 부탁드려요", "asr")]  # the dialog answered once


def test_a_preview_the_caller_talks_on_from_leaves_no_trace(session):
    _json(session, event="turn_preview", utterance=1, text="배송 조회")
    gevent.sleep(0.3)
    _json(session, event="turn_resumed", utterance=1)
    _final(session, 1, "배송 조회 말고 반품 신청이요")
    gevent.sleep(0.3)
    for turn in (session.turn, session.preview):
        if turn is not None:
            turn.handle.synthesis_done = True
    played = session.conn.playbacks()
    assert played and all(session.turn.handle.utt_id in p for p in played)  # only the real turn's audio
    conv = session.conv
    assert [c for c, _ in conv.received] == ["배송 조회", "배송 조회 말고 반품 신청이요"]
    # The preview's caller words and its answer are gone from the history; the real turn is there.
    assert conv.history[0] == ("user", "배송 조회 말고 반품 신청이요")
    assert all("배송 조회 말씀" not in text for _, text in conv.history)
    callers = [t["text"] for t in session.deps.store.turns() if t["speaker"] == "caller"]
    assert callers == ["배송 조회 말고 반품 신청이요"]


def test_a_final_for_other_words_replaces_the_preview(session):
    _json(session, event="turn_preview", utterance=1, text="환불")
    gevent.sleep(0.3)
    _final(session, 1, "환불 말고 교환이요")
    gevent.sleep(0.3)
    assert [c for c, _ in session.conv.received] == ["환불", "환불 말고 교환이요"]
    assert [role for role, _ in session.conv.history].count("user") == 1


def test_a_keypad_flood_is_counted_not_stored_row_by_row(session):
    session.clock = lambda: 100.0  # ten thousand keys inside one second
    for _ in range(10_000):
        session._on_dtmf("5")
    dtmf_rows = [f for op, f in session.deps.store.ops if op == "event" and f["kind"] == "dtmf"]
    assert len(dtmf_rows) == 20
    assert len(session.keypad.digits) == 32  # the entry is bounded too


def test_an_agent_turn_carries_the_llm_tokens_it_used(session):
    session.conv.take_usage = lambda: {"prompt_tokens": 812, "completion_tokens": 37}
    _final(session, 1, "배송 조회 부탁드려요.")
    gevent.sleep(0.3)
    handle = session.turn.handle
    for chunk in handle.chunks:  # FreeSWITCH played them all
        handle.on_start(chunk.index, 1.0)
        handle.on_stop(chunk.index, "done", 2.0)
    session.voice.check_finished(handle)
    gevent.sleep(0.2)
    (agent,) = [t for t in session.deps.store.turns() if t["speaker"] == "agent"]
    assert agent["detail"]["llm_usage"] == {"prompt_tokens": 812, "completion_tokens": 37}


def _agent_speaking(s: CallSession) -> None:
    handle = s.voice.new_handle("reply")
    s.voice.queue(handle, "주문하신 상품은 내일 도착합니다.", "/spool/r.wav", 3.0)
    handle.synthesis_done = True
    handle.on_start(0, s.clock())


def test_a_cough_over_the_reply_resumes_it_and_its_transcript_starts_nothing(session):
    _agent_speaking(session)
    _json(session, event="speech_onset", utterance=3, at=1.0)
    _json(session, event="speech_paused", utterance=3, at=1.3, voiced_ms=220)
    _final(session, 3, "켁")
    gevent.sleep(0.1)
    api = [arg for app, arg in session.conn.sent if app == "api"]
    assert api == [f"uuid_fileman {UUID} pause", f"uuid_fileman {UUID} pause"]  # paused, then resumed
    assert session.turn is None and session.conv.received == []


def test_words_over_the_reply_after_a_short_pause_still_interrupt(session):
    _agent_speaking(session)
    _json(session, event="speech_onset", utterance=3, at=1.0)
    _json(session, event="speech_paused", utterance=3, at=1.4, voiced_ms=420)
    _final(session, 3, "아니요")
    gevent.sleep(0.1)
    api = [arg for app, arg in session.conn.sent if app == "api"]
    assert api[-1] == f"uuid_break {UUID} all" and session.conv.received == [("아니요", "asr")]


# Released on speech_ended: the worker's decision read the same words the held reply was prepared from -------

PREVIEW = "배송 조회 부탁드려요"


def _ended(s: CallSession, utterance: int, text: str | None) -> None:
    body: dict[str, Any] = {"event": "speech_ended", "utterance": utterance, "start": 1.0, "end": 2.5,
                            "eos_wait_ms": 240, "eot": {"reason": "sentence_end", "silence_ms": 240}}
    if text is not None:
        body["text"] = text
    _json(s, **body)


def _prepared(s: CallSession, utterance: int = 1, text: str = PREVIEW) -> None:
    before = len(s.conn.playbacks())
    _json(s, event="turn_preview", utterance=utterance, text=text)
    gevent.sleep(0.3)  # generated and synthesized, held
    assert len(s.conn.playbacks()) == before


def _played_out(s: CallSession) -> None:
    handle = s.turn.handle
    handle.synthesis_done = True
    for chunk in handle.chunks:
        handle.on_start(chunk.index, 1.0)
        handle.on_stop(chunk.index, "done", 2.0)
    s.voice.check_finished(handle)
    assert not s.voice.playout.audio_queued


def test_the_end_of_turn_on_the_previewed_words_plays_the_reply_before_the_final(session):
    _prepared(session)
    _ended(session, 1, "배송 조회, 부탁드려요.")  # the same words, other punctuation
    gevent.sleep(0.1)
    assert len(session.conn.playbacks()) == 2  # no final yet: the reply did not wait for the ASR's last pass
    (caller,) = [t for t in session.deps.store.turns() if t["speaker"] == "caller"]
    assert caller["text"] == PREVIEW and caller["eos_wait_ms"] == 240
    assert caller["detail"]["asr_wait_ms"] == 0 and caller["detail"]["eot"]["reason"] == "sentence_end"
    # The final then differs a little (the last pass rescored a word): kept as an event, no second turn and
    # no "words over the reply" break of the answer to these very words.
    session.fork.on_custom("mod_audio_fork::transcription", {"final": True, "utterance": 1, "asr_ms": 85,
                                                            "text": "배송 조회 부탁드려유"})
    gevent.sleep(0.3)
    assert session.conv.received == [(PREVIEW, "asr")]
    assert not any("uuid_break" in arg for app, arg in session.conn.sent if app == "api")
    [event] = [f for op, f in session.deps.store.ops if op == "event" and f["kind"] == "final_after_reply"]
    assert event["detail"] == {"utterance": 1, "asr_ms": 85, "same_words": False, "text": "배송 조회 부탁드려유"}


def test_an_end_without_words_or_with_other_words_still_waits_for_the_final(session):
    _prepared(session)
    _ended(session, 1, None)  # the worker sends words only while a preview of the utterance stands
    gevent.sleep(0.1)
    assert session.conn.playbacks() == []
    _final(session, 1, PREVIEW)
    gevent.sleep(0.1)
    assert len(session.conn.playbacks()) == 2
    _played_out(session)

    _prepared(session, 2, "환불")
    _ended(session, 2, "환불 말고 교환이요")  # the deciding check read more than the preview
    gevent.sleep(0.1)
    assert len(session.conn.playbacks()) == 2
    _final(session, 2, "환불 말고 교환이요")
    gevent.sleep(0.3)
    assert [c for c, _ in session.conv.received] == [PREVIEW, "환불", "환불 말고 교환이요"]


def test_an_end_for_another_utterance_or_during_a_barge_in_releases_nothing(session):
    _prepared(session, 2)
    _ended(session, 1, PREVIEW)
    gevent.sleep(0.1)
    assert session.conn.playbacks() == []
    _agent_speaking(session)  # audio of an earlier reply still queued: the final decides, as before
    _ended(session, 2, PREVIEW)
    gevent.sleep(0.1)
    assert session.conn.playbacks() == ["{utt_id=r2,chunk=0}/spool/r.wav"] and session.preview is not None


def test_a_failed_final_pass_after_the_reply_started_asks_nothing_again(session):
    _prepared(session)
    _ended(session, 1, PREVIEW)
    gevent.sleep(0.1)
    _json(session, event="asr_error", utterance=1, reason="timeout after 10 s", retryable=True)
    gevent.sleep(0.1)
    assert session.state == "active" and session.fork.asr_errors == 0  # no reprompt, no hand-off
    assert len(session.conn.playbacks()) == 2
    [event] = [f for op, f in session.deps.store.ops if op == "event" and f["kind"] == "asr_error"]
    assert event["detail"] == {"reason": "timeout after 10 s", "retryable": True, "answered": True}


def test_finals_arriving_after_two_early_replies_start_no_turn(session):
    _prepared(session, 1)
    _ended(session, 1, PREVIEW)
    gevent.sleep(0.3)
    _prepared_next = "반품 신청할게요"
    _json(session, event="turn_preview", utterance=2, text=_prepared_next)
    gevent.sleep(0.3)
    _played_out(session)
    _ended(session, 2, _prepared_next)
    gevent.sleep(0.3)
    _final(session, 1, PREVIEW)  # a busy recogniser: both finals come after both ends
    _final(session, 2, _prepared_next)
    gevent.sleep(0.3)
    assert session.conv.received == [(PREVIEW, "asr"), (_prepared_next, "asr")]
    assert len([f for op, f in session.deps.store.ops if op == "event" and f["kind"] == "final_after_reply"]) == 2


def test_a_held_reply_dropped_for_want_of_confirmation_or_a_barge_in_in_progress_is_not_released(session,
                                                                                              monkeypatch):
    monkeypatch.setattr("agent.call.turn.HOLD_MAX_S", 0.1)
    _prepared(session)  # held past HOLD_MAX_S: discarded (still the session's preview object)
    _ended(session, 1, PREVIEW)
    gevent.sleep(0.1)
    assert session.conn.playbacks() == [] and session.deps.store.turns() == []  # no trace of it
    monkeypatch.setattr("agent.call.turn.HOLD_MAX_S", 5.0)
    _prepared(session, 2)
    session.barge.armed_at = session.clock()  # the caller is being heard over a paused reply
    _ended(session, 2, PREVIEW)
    gevent.sleep(0.1)
    assert session.conn.playbacks() == []


def test_after_an_early_reply_no_slow_recogniser_filler_follows_it(session):
    _prepared(session)
    _ended(session, 1, PREVIEW)
    gevent.sleep(0.1)
    _played_out(session)  # the reply is over and the final still has not come
    session.fork.connected = True
    now = session.clock()
    session.fork.tick(now + session.cfg.filler_after_s + 1, now - 10)
    gevent.sleep(0.1)
    assert not [f for op, f in session.deps.store.ops if op == "event" and f["kind"] == "slow_step_filler"]


def test_early_answers_are_remembered_for_their_finals_up_to_a_bound(session):
    # Finals the worker dropped (max_pending_utterances) never come: the oldest entries go past the bound.
    session.fork._answered_early.update({n: "네" for n in range(100, 107)})
    _prepared(session, 107)
    _ended(session, 107, PREVIEW)
    assert sorted(session.fork._answered_early) == list(range(100, 108))  # 8 kept
    _played_out(session)
    _prepared(session, 108)
    _ended(session, 108, PREVIEW)
    assert sorted(session.fork._answered_early) == list(range(101, 109))  # the oldest went
