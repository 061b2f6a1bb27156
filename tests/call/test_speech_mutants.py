"""Speech handles at their edges (pure, times passed in): what the caller heard of each chunk and group, the
deadlines that stop a wait for an event that will not come, pauses that are not time heard, and late events."""

import pytest

from agent.call.speech import DEADLINE_MARGIN_S, Chunk, Playout, SpeechHandle


def chunk(duration_s: float = 4.0, **kw) -> Chunk:
    return Chunk(0, "가 나 다 라", "/a.wav", duration_s, **kw)


def test_played_time_leaves_out_pauses_and_is_never_negative():
    c = chunk()
    assert c.played_s() == 0.0
    c.started_at = 10.0
    assert c.played_s() == 0.0  # not stopped yet
    c.stopped_at, c.paused_s = 13.0, 1.0
    assert c.played_s() == 2.0
    c.paused_s = 5.0
    assert c.played_s() == 0.0


@pytest.mark.parametrize("status, heard", [("done", 4.0), ("break", 2.0), ("lost", 2.0), ("error", 0.0), ("", 0.0)])
def test_heard_time_by_how_the_chunk_ended(status, heard):
    c = chunk(started_at=10.0, stopped_at=12.0, status=status)
    assert c.heard_s() == heard


def test_a_pause_counts_once_and_pushes_the_deadline():
    c = chunk(deadline=20.0)
    c.pause(5.0)
    assert c.paused_since is None  # not playing yet: nothing to pause
    c.started_at = 10.0
    c.pause(11.0)
    c.pause(11.5)  # already paused: the first moment counts
    c.resume(12.0)
    assert (c.paused_s, c.deadline, c.paused_since) == (1.0, 21.0, None)
    c.resume(13.0)  # not paused: nothing changes
    assert (c.paused_s, c.deadline) == (1.0, 21.0)
    c.pause(14.0)
    c.resume(13.0)  # a clock that went back never subtracts
    assert (c.paused_s, c.deadline) == (1.0, 21.0)


def test_stop_while_paused_counts_the_pause():
    c = chunk(started_at=10.0)
    c.pause(11.0)
    c.stop("break", 12.5)
    assert (c.paused_s, c.stopped_at, c.status, c.paused_since) == (1.5, 12.5, "break", None)
    assert c.played_s() == 1.0


def test_add_numbers_chunks_and_sets_deadlines_after_what_is_queued():
    h = SpeechHandle("r1", "reply")
    a = h.add("하나", "/a.wav", 2.0, at=10.0)
    b = h.add("둘", "/b.wav", 3.0, at=10.5, after=12.0)
    c = h.add("셋", "/c.wav", 1.0, at=20.0, after=12.0, group=7)
    assert [x.index for x in (a, b, c)] == [0, 1, 2] and [x.group for x in (a, b, c)] == [0, 1, 7]
    assert (a.queued_at, a.deadline) == (10.0, 10.0 + 2.0 + DEADLINE_MARGIN_S)
    assert b.deadline == 12.0 + 3.0 + DEADLINE_MARGIN_S
    assert c.deadline == 20.0 + 1.0 + DEADLINE_MARGIN_S
    assert (c.text, c.path, c.duration_s) == ("셋", "/c.wav", 1.0)
    assert h.text == "하나 둘 셋"
    assert h.planned_end == 21.0


def test_finished_only_when_nothing_is_queued_and_synthesis_is_over_or_cut():
    h = SpeechHandle("r1", "reply")
    assert h.playing_or_queued and not h.finished  # still being written
    h.synthesis_done = True
    assert h.finished
    h.add("a", "/a.wav", 1.0)
    assert not h.finished
    h.on_stop(0, "done", 1.0)
    assert h.finished
    g = SpeechHandle("r2", "reply", interrupted=True)
    assert g.finished


def test_heard_groups_a_streamed_text_and_shares_a_cut_one_by_time():
    h = SpeechHandle("r1", "reply")
    h.add("", "/a1.wav", 1.0, group=0)
    h.add("하나 둘 셋 넷", "/a2.wav", 1.0, group=0)  # the text rides on the group's last part
    h.add("다섯 여섯 일곱 여덟 아홉 열", "/b1.wav", 2.0, group=1)
    h.add("", "/b2.wav", 1.0, group=1)
    for i in range(3):
        h.on_start(i, float(i))
        h.on_stop(i, "done", float(i) + 1.0)
    # Group 1 is not over: its share so far is 2 of 3 s, 4 of its 6 words.
    assert h.heard() == "하나 둘 셋 넷 다섯 여섯 일곱 여덟"
    # What is stored as the agent's turn: the words once each, no space for the parts that carry no text.
    assert h.text == "하나 둘 셋 넷 다섯 여섯 일곱 여덟 아홉 열"
    h.cut(3.5)
    assert h.chunks[3].status == "break" and h.chunks[3].started_at is None and h.chunks[3].stopped_at is None
    assert h.heard() == "하나 둘 셋 넷 다섯 여섯 일곱 여덟"


def test_heard_rounds_down_and_skips_empty_and_silent_groups():
    h = SpeechHandle("r1", "reply")
    h.add("a b c", "/a.wav", 3.0)
    h.add("zero", "/z.wav", 0.0)
    h.add("d e", "/d.wav", 2.0)
    h.on_start(0, 0.0)
    h.on_stop(0, "break", 1.9)  # 1.9 of 3 s: 1.9 words of 3 → 1
    h.cut(2.0)
    assert h.heard() == "a"
    h2 = SpeechHandle("r2", "reply")
    h2.add("a b", "/a.wav", 2.0)
    h2.on_start(0, 0.0)
    h2.on_stop(0, "break", 5.0)  # longer than the file (a late event): never more than all of it
    assert h2.heard() == "a b"


def test_start_moves_the_deadline_and_marks_first_audio_once():
    h = SpeechHandle("r1", "reply")
    h.add("a", "/a.wav", 2.0, at=0.0)
    h.add("b", "/b.wav", 2.0, at=0.0, after=2.0)
    h.on_start(0, 5.0)
    assert h.chunks[0].deadline == 5.0 + 2.0 + DEADLINE_MARGIN_S and h.first_audio_at == 5.0
    h.on_start(1, 7.0)
    assert h.first_audio_at == 5.0 and h.chunks[1].started_at == 7.0
    h.on_start(2, 8.0)
    h.on_start(-1, 8.0)  # not ours: ignored
    assert h.chunks[1].started_at == 7.0


def test_start_of_a_chunk_already_over_is_ignored():
    h = SpeechHandle("r1", "reply")
    h.add("a", "/a.wav", 2.0)
    h.on_failed(0, 1.0)
    h.on_start(0, 2.0)
    assert h.chunks[0].started_at is None and h.first_audio_at is None


def test_stop_status_and_late_stops():
    h = SpeechHandle("r1", "reply")
    for name in "abcd":
        h.add(name, f"/{name}.wav", 1.0)
    h.on_start(0, 0.0)
    h.on_stop(0, "break", 0.5)
    h.on_stop(1, "whatever", 1.0)  # anything but break is a played file
    assert [c.status for c in h.chunks[:2]] == ["break", "done"]
    assert h.chunks[0].stopped_at == 0.5
    h.on_stop(0, "done", 2.0)  # a second stop changes nothing
    assert h.chunks[0].status == "break" and h.chunks[0].stopped_at == 0.5
    h.on_failed(3, 5.0)
    h.on_stop(3, "done", 6.0)
    assert h.chunks[3].status == "error" and h.chunks[3].stopped_at == 5.0
    h.expire(100.0)
    assert h.chunks[2].status == "lost"
    h.on_stop(2, "done", 101.0)  # the event came after all: the chunk was heard
    assert h.chunks[2].status == "done" and h.chunks[2].stopped_at == 101.0
    h.on_stop(4, "done", 6.0)  # out of range
    h.on_failed(1, 7.0)  # already done: a failure report cannot undo it
    assert h.chunks[1].status == "done"


def test_expire_is_strictly_after_the_deadline_and_never_while_paused():
    h = SpeechHandle("r1", "reply")
    a = h.add("a", "/a.wav", 1.0, at=0.0)  # deadline 2.5
    b = h.add("b", "/b.wav", 1.0, at=0.0)
    b.started_at = 0.0
    b.pause(0.5)
    h.add("c", "/c.wav", 9.0, at=0.0)
    assert h.expire(2.5) == []
    late = h.expire(2.6)
    assert late == [a] and a.status == "lost" and a.stopped_at == 2.6
    assert b.status == "" and h.chunks[2].status == ""


def test_cut_stops_what_plays_and_drops_what_waits():
    h = SpeechHandle("r1", "reply")
    for name in "abc":
        h.add(name, f"/{name}.wav", 1.0)
    h.on_start(0, 0.0)
    h.on_stop(0, "done", 1.0)
    h.on_start(1, 1.0)
    h.cut(1.4)
    assert h.interrupted
    assert [(c.status, c.stopped_at) for c in h.chunks] == [("done", 1.0), ("break", 1.4), ("break", None)]


def test_playout_names_handles_by_kind_and_sequence():
    p = Playout()
    r, g, f = p.new("reply"), p.new("greeting", interruptible=False), p.new("filler")
    assert [h.utt_id for h in (r, g, f)] == ["r1", "g2", "f3"]
    assert (r.kind, r.interruptible, g.interruptible) == ("reply", True, False)
    assert p.get("g2") is g and p.get("x9") is None


def test_playout_states():
    p = Playout()
    assert not p.speaking and not p.audio_queued and not p.audio_playing and not p.interruptible_now
    assert p.queued_until() == 0.0
    r = p.new("reply")
    assert p.speaking and not p.audio_queued  # a reply still being written is not audio
    r.add("a", "/a.wav", 2.0, at=1.0)
    assert p.audio_queued and not p.audio_playing
    r.on_start(0, 2.0)
    assert p.audio_playing and p.interruptible_now
    g = p.new("greeting", interruptible=False)
    g.add("g", "/g.wav", 3.0, at=2.0, after=4.0)
    assert not p.interruptible_now
    assert p.queued_until() == 7.0 and p.active() == [r, g]


def test_playout_pause_resume_and_expire_reach_every_chunk():
    p = Playout()
    a, b = p.new("reply"), p.new("prompt")
    a.add("a", "/a.wav", 1.0)
    b.add("b", "/b.wav", 1.0)
    a.on_start(0, 0.0)
    b.on_start(0, 0.0)
    p.pause(0.5)
    p.resume(1.5)
    assert a.chunks[0].paused_s == b.chunks[0].paused_s == 1.0
    expired = p.expire(100.0)
    assert expired == [(a, a.chunks[0]), (b, b.chunks[0])]


def test_forget_finished_keeps_the_last_few_and_everything_unfinished():
    p = Playout()
    handles = [p.new("reply") for _ in range(12)]
    for h in handles[:10]:
        h.synthesis_done = True
    p.forget_finished()
    assert list(p.handles) == [h.utt_id for h in handles[2:]]
    p.forget_finished(keep=3)
    assert list(p.handles) == [h.utt_id for h in handles[7:]]
    p.forget_finished(keep=0)
    assert list(p.handles) == ["r11", "r12"]


def test_a_chunk_queued_without_a_time_is_due_from_zero():
    h = SpeechHandle("r1", "reply")
    c = h.add("a", "/a.wav", 2.0)
    assert (c.queued_at, c.deadline) == (0.0, 2.0 + DEADLINE_MARGIN_S)


def test_a_group_played_to_the_end_is_heard_whole_even_with_no_duration():
    h = SpeechHandle("r1", "reply")
    h.add("하나 둘", "/a1.wav", 0.0, group=0)
    h.add("셋", "/a2.wav", 0.0, group=0)
    for i in range(2):
        h.on_stop(i, "done", 1.0)
    assert h.heard() == "하나 둘 셋"


def test_a_short_cut_chunk_still_yields_its_share():
    h = SpeechHandle("r1", "reply")
    h.add("가 나 다 라", "/a.wav", 0.8)
    h.on_start(0, 0.0)
    h.on_stop(0, "break", 0.4)
    assert h.heard() == "가 나"
