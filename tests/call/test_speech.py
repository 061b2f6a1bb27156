"""Speech handles: what the caller heard when a barge-in cut a reply."""

from agent.call.speech import Playout


def test_heard_text_keeps_finished_chunks_and_the_played_share_of_the_cut_one():
    p = Playout()
    h = p.new("reply")
    h.add("주문하신 상품은 어제 출발했습니다.", "/a.wav", 2.0)
    h.add("오늘 오후에 도착할 예정이며 배송 기사님이 연락드릴 거예요.", "/b.wav", 4.0)
    h.add("더 필요하신 게 있으신가요?", "/c.wav", 1.5)
    h.synthesis_done = True
    assert p.speaking and p.interruptible_now
    h.on_start(0, 10.0)
    h.on_stop(0, "done", 12.0)
    h.on_start(1, 12.0)
    h.cut(14.0)  # half of chunk 1 played, chunk 2 never started
    h.on_stop(1, "break", 14.0)
    assert h.finished and h.interrupted
    assert h.heard() == "주문하신 상품은 어제 출발했습니다. 오늘 오후에 도착할 예정이며"  # 4 of 8 words
    assert not p.speaking


def test_greeting_is_not_interruptible():
    p = Playout()
    g = p.new("greeting", interruptible=False)
    g.add("안녕하세요", "/g.wav", 3.0)
    g.synthesis_done = True
    assert p.speaking and not p.interruptible_now
    g.on_stop(0, "done", 3.0)
    assert not p.speaking


def test_reply_still_synthesizing_counts_as_speaking():
    p = Playout()
    h = p.new("reply")
    assert p.speaking  # nothing queued yet, but the reply is being generated
    h.synthesis_done = True
    assert not p.speaking


def test_a_pause_is_not_heard_time():
    p = Playout()
    h = p.new("reply")
    h.add("하나 둘 셋 넷", "/a.wav", 2.0, at=0.0)
    h.synthesis_done = True
    h.on_start(0, 10.0)
    p.pause(10.5)
    p.resume(11.5)  # a second paused: the deadline moves with it
    assert h.chunks[0].deadline == 10.0 + 2.0 + 1.5 + 1.0
    h.cut(12.0)
    assert h.heard() == "하나 둘"  # 1.0 s of 2.0 s played (half the words), not 2.0 s


def test_parts_of_one_text_share_it_by_duration():
    h = Playout().new("reply")
    h.add("", "/a0.wav", 1.0, group=7)  # a streaming engine: the text rides on the last part
    h.add("가 나 다 라", "/a1.wav", 1.0, group=7)
    h.on_start(0, 0.0)
    h.on_stop(0, "done", 1.0)
    h.cut(1.0)
    assert h.heard() == "가 나"  # half of the group's audio played


def test_failed_and_silent_chunks_end_without_events():
    p = Playout()
    h = p.new("reply")
    h.add("못 여는 파일", "/missing.wav", 1.0, at=0.0)
    h.add("이벤트 없는 파일", "/b.wav", 1.0, at=0.0, after=1.0)
    h.synthesis_done = True
    h.on_failed(0, 0.1)
    assert h.chunks[0].status == "error" and p.speaking
    assert p.expire(3.4) == []
    assert [c.index for _, c in p.expire(3.6)] == [1]  # 1 s after the first + its 1 s + margin
    assert h.finished and h.heard() == ""
