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
