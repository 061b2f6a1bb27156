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
