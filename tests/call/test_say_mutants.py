"""The say verb on a fake socket: the `sendmsg playback` lines FreeSWITCH receives (tags, event-lock, the
Application-UUID that CHANNEL_EXECUTE_COMPLETE echoes), PLAYBACK_START/STOP events as FreeSWITCH sends them
(freeswitch.md §1.8), a file it cannot open (§10: FILE NOT FOUND, no PLAYBACK events), the pause toggle and the
flush, and what is recorded for each."""

from __future__ import annotations

import gevent
import pytest

from agent.call.actions.say import Voice
from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.esl.codec import Event
from tests.call.fast_fakes import UUID, Clock, FakeConn, FakePrompts, FakeStore


@pytest.fixture
def v(tmp_path):
    clock = Clock(50.0)
    conn, store = FakeConn(), FakeStore()
    record = CallRecord(store, ChannelInfo(uuid=UUID))  # type: ignore[arg-type]
    voice = Voice(conn, UUID, 8000, FakePrompts(tmp_path, 0.5), record, clock=clock)  # type: ignore[arg-type]
    voice.test_clock, voice.test_store = clock, store  # type: ignore[attr-defined]
    return voice


def _playback(v: Voice, name: str, utt_id: str, chunk: str, status: str = "") -> None:
    headers = {"Event-Name": name, "Unique-ID": UUID, "variable_utt_id": utt_id, "utt_id": utt_id, "chunk": chunk}
    if status:
        headers["Playback-Status"] = status
    v.on_playback(Event(headers), name == "PLAYBACK_START")


def _complete(v: Voice, app_uuid: str, response: str, app: str = "playback") -> bool:
    return v.on_execute_complete(Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Application": app,
                                        "Application-UUID": app_uuid, "Application-Response": response}))


def test_queue_sends_an_event_locked_playback_tagged_with_its_chunk(v):
    h = v.new_handle("reply")
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    v.queue(h, "둘", "/spool/b.wav", 2.0, group=7)
    assert v.conn.sent == [
        ("sendmsg", "playback", f"{{utt_id={h.utt_id},chunk=0}}/spool/a.wav",
         {"event_lock": True, "app_uuid": f"{UUID}-{h.utt_id}-0"}),
        ("sendmsg", "playback", f"{{utt_id={h.utt_id},chunk=1}}/spool/b.wav",
         {"event_lock": True, "app_uuid": f"{UUID}-{h.utt_id}-1"})]
    assert [c.group for c in h.chunks] == [0, 7]
    # The second starts after the first: 50 + 1 + 2 s is when the handle should be over.
    assert h.planned_end == pytest.approx(53.0) and v.remaining_s(h) == pytest.approx(3.0)
    v.test_clock.t = 60.0
    assert v.remaining_s(h) == 0.0


def test_a_prompt_is_played_from_the_cache_and_recorded_as_an_agent_turn(v):
    h = v.say_prompt("여보세요?")
    assert v.prompts.asked == ["여보세요?"]
    (line,) = v.conn.playbacks()
    assert line.endswith("/prompt-1.wav") and line.startswith(f"{{utt_id={h.utt_id},chunk=0}}")
    assert h.kind == "prompt" and h.interruptible and h.synthesis_done
    assert h.chunks[0].duration_s == pytest.approx(0.5)  # the file's own length
    (turn,) = v.test_store.turns()
    assert (turn["speaker"], turn["text"], turn["source"], turn["seq"]) == ("agent", "여보세요?", "prompt", 1)
    filler = v.say_prompt("잠시만요", kind="filler", interruptible=False)
    assert filler.kind == "filler" and not filler.interruptible
    assert v.test_store.turns()[-1]["source"] == "filler" and v.test_store.turns()[-1]["seq"] == 2


def test_playback_events_track_what_played_and_finish_the_handle(v):
    h = v.play_file("안녕하세요", v.prompt_path("안녕하세요"), kind="greeting", interruptible=False)
    assert not v.wait_finished(h, 0.01)
    _playback(v, "PLAYBACK_START", h.utt_id, "0")
    assert h.first_audio_at == 50.0 and h.chunks[0].playing
    v.test_clock.t = 50.5
    _playback(v, "PLAYBACK_STOP", h.utt_id, "0", "done")
    assert h.chunks[0].status == "done" and h.finished
    assert v.wait_finished(h, 0.01)  # set by the stop event itself


def test_a_stop_with_break_status_is_a_cut(v):
    h = v.play_file("안녕하세요", v.prompt_path("x"), kind="reply", interruptible=True)
    _playback(v, "PLAYBACK_START", h.utt_id, "0")
    _playback(v, "PLAYBACK_STOP", h.utt_id, "0", "break")
    assert h.chunks[0].status == "break"


def test_events_of_unknown_handles_or_without_a_chunk_number_are_ignored(v):
    h = v.play_file("x", v.prompt_path("x"), kind="reply", interruptible=True)
    _playback(v, "PLAYBACK_START", "nope", "0")
    _playback(v, "PLAYBACK_START", h.utt_id, "")
    _playback(v, "PLAYBACK_START", h.utt_id, "x1")
    assert h.first_audio_at is None


def test_a_file_freeswitch_cannot_open_fails_its_chunk_and_is_recorded(v):
    h = v.new_handle("reply")
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    v.queue(h, "둘", "/missing.wav", 1.0)
    h.synthesis_done = True
    assert _complete(v, f"{UUID}-{h.utt_id}-1", "FILE NOT FOUND") is True
    assert h.chunks[1].status == "error" and h.chunks[0].status == "" and v.failures == 1
    assert v.test_store.events("playback_failed")[0]["detail"] == {"utt_id": h.utt_id, "chunk": 1,
                                                                   "response": "FILE NOT FOUND"}
    assert _complete(v, f"{UUID}-{h.utt_id}-0", "PLAYBACK ERROR INVALID FORMAT") is True
    assert h.finished and v.failures == 2 and v.wait_finished(h, 0.01)


@pytest.mark.parametrize("app,response,app_uuid", [
    ("playback", "FILE PLAYED", "{u}-{utt}-0"),
    ("playback", "", "{u}-{utt}-0"),
    ("speak", "FILE NOT FOUND", "{u}-{utt}-0"),
    ("playback", "FILE NOT FOUND", "{u}-{utt}-9"),
    ("playback", "FILE NOT FOUND", "other-{utt}-0"),
])
def test_other_completions_fail_nothing(v, app, response, app_uuid):
    h = v.new_handle("reply")
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    assert _complete(v, app_uuid.format(u=UUID, utt=h.utt_id), response, app) is False
    assert h.chunks[0].status == "" and v.failures == 0 and v.test_store.events("playback_failed") == []


def test_a_chunk_without_events_expires_past_its_deadline_and_is_recorded(v):
    h = v.new_handle("reply")
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    h.synthesis_done = True
    v.test_clock.t = 50.0 + 1.0 + 1.5
    assert v.expire() == 0
    v.test_clock.t += 0.01
    assert v.expire() == 1 and h.finished and v.wait_finished(h, 0.01)
    assert v.test_store.events("playback_lost")[0]["detail"] == {"utt_id": h.utt_id, "chunk": 0}


def test_pause_toggles_the_file_once_and_resume_toggles_it_back(v):
    h = v.new_handle("reply")
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    _playback(v, "PLAYBACK_START", h.utt_id, "0")
    assert v.pause() is True and v.paused
    assert v.pause() is True  # already paused: a second toggle would resume it
    assert v.conn.apis() == [f"uuid_fileman {UUID} pause"]
    assert h.chunks[0].paused_since == 50.0
    v.test_clock.t = 51.0
    v.resume()
    v.resume()
    assert v.conn.apis() == [f"uuid_fileman {UUID} pause"] * 2 and not v.paused
    assert h.chunks[0].paused_since is None


def test_a_pause_between_chunks_is_refused_and_nothing_is_paused(v):
    v.conn.api_replies["uuid_fileman"] = "-ERR No file handle!\n"
    h = v.new_handle("reply")
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    assert v.pause() is False and not v.paused
    assert h.chunks[0].paused_since is None
    v.resume()  # nothing was paused: no toggle
    assert v.conn.apis() == [f"uuid_fileman {UUID} pause"]


def test_break_all_flushes_and_cuts_every_handle(v):
    a = v.new_handle("reply")
    v.queue(a, "하나", "/spool/a.wav", 1.0)
    b = v.new_handle("filler")
    v.queue(b, "잠시만요", "/spool/b.wav", 1.0)
    a.synthesis_done = b.synthesis_done = True
    _playback(v, "PLAYBACK_START", a.utt_id, "0")
    v.pause()
    v.test_clock.t = 50.4
    v.break_all()
    assert v.conn.apis()[-1] == f"uuid_break {UUID} all" and not v.paused
    assert a.interrupted and b.interrupted and a.chunks[0].status == "break" and b.chunks[0].status == "break"
    assert v.wait_finished(a, 0.01) and v.wait_finished(b, 0.01)


def test_a_waiter_wakes_when_the_last_stop_arrives(v):
    h = v.play_file("x", v.prompt_path("x"), kind="reply", interruptible=True)
    g = gevent.spawn(v.wait_finished, h, 5.0)
    gevent.sleep(0.01)
    assert not g.ready()
    _playback(v, "PLAYBACK_STOP", h.utt_id, "0", "done")
    assert g.get(timeout=1) is True


def test_old_finished_handles_are_forgotten_but_waits_on_them_return(v):
    handles = []
    for i in range(12):
        h = v.new_handle("reply")
        v.queue(h, str(i), f"/spool/{i}.wav", 1.0)
        _playback(v, "PLAYBACK_STOP", h.utt_id, "0", "done")
        h.synthesis_done = True
        handles.append(h)
    v.new_handle("reply")
    assert handles[0].utt_id not in v.playout.handles
    assert v.wait_finished(handles[0], 0.01) is True  # nothing left to wait on
    assert set(v._finished) <= set(v.playout.handles)


def test_a_new_handle_is_an_interruptible_reply_by_default(v):
    h = v.new_handle()
    assert h.kind == "reply" and h.interruptible and h.utt_id.startswith("r")


def test_queued_chunks_keep_their_text_and_file(v):
    h = v.new_handle()
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    p = v.say_prompt("여보세요?")
    assert (h.chunks[0].text, h.chunks[0].path) == ("하나", "/spool/a.wav")
    assert p.chunks[0].text == "여보세요?" and p.text == "여보세요?" and p.chunks[0].path.endswith(".wav")
    assert v.test_store.turns()[0]["started_at"]


def test_stops_and_failures_are_stamped_with_the_calls_clock(v):
    h = v.new_handle()
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    v.queue(h, "둘", "/spool/b.wav", 1.0)
    _playback(v, "PLAYBACK_START", h.utt_id, "0")
    v.test_clock.t = 50.75
    _playback(v, "PLAYBACK_STOP", h.utt_id, "0", "done")
    v.test_clock.t = 51.0
    _complete(v, f"{UUID}-{h.utt_id}-1", "FILE NOT FOUND")
    assert h.chunks[0].stopped_at == 50.75 and h.chunks[1].stopped_at == 51.0


def test_a_refused_break_or_resume_is_no_error(v):
    v.conn.api_replies.update({"uuid_break": "-ERR No such channel!\n", "uuid_fileman": "+OK\n"})
    h = v.new_handle()
    v.queue(h, "하나", "/spool/a.wav", 1.0)
    v.pause()
    v.conn.api_replies["uuid_fileman"] = "-ERR No file handle!\n"
    v.resume()
    v.break_all()
    assert v.conn.apis()[-2:] == [f"uuid_fileman {UUID} pause", f"uuid_break {UUID} all"] and h.interrupted
