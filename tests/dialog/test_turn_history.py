"""The history holds what the caller heard: settled per turn, and a cancelled turn can never write again."""

import threading

from agent.dialog.state import DialogState, turn_scope


def _state() -> DialogState:
    return DialogState(call=None, pack=None, clock=lambda: 0.0)  # type: ignore[arg-type]


def _turn(state: DialogState, turn_id: str, caller: str, *says: str) -> None:
    with turn_scope(turn_id):
        state.history.append({"role": "user", "content": caller})
        msg = state.begin_agent()
        for text in says:
            state.add_agent(text, msg)


def test_settle_keeps_exactly_the_heard_prefix_across_sentences():
    s = _state()
    _turn(s, "t1", "배송 조회요", "네, 확인해 보겠습니다.", "주문하신 상품은 내일 도착합니다.")
    s.settle_turn("t1", "네, 확인해 보겠습니다. 주문하신 상품은")
    assert [m["content"] for m in s.history] == ["배송 조회요", "네, 확인해 보겠습니다. 주문하신 상품은"]


def test_nothing_heard_leaves_only_the_caller_and_tool_pairs():
    s = _state()
    with turn_scope("t1"):
        s.history.append({"role": "user", "content": "주문 123456 조회"})
        s.history.append({"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]})
        s.history.append({"role": "tool", "tool_call_id": "c1", "content": "{}"})
        msg = s.begin_agent()
        s.add_agent("주문은 배송 중입니다.", msg)
    s.settle_turn("t1", "")
    assert [m["role"] for m in s.history] == ["user", "assistant", "tool"]  # the call and its result stay paired


def test_a_closed_turn_cannot_write_again_even_from_its_running_thread():
    s = _state()
    _turn(s, "t1", "첫 질문", "첫 답변")
    s.settle_turn("t1", "")

    def late_step() -> None:  # the cancelled turn's dialog step finishing in a pool thread
        with turn_scope("t1"):
            s.history.append({"role": "tool", "content": "late"})
            s.add_agent("늦은 문장", s.history[0])

    _turn(s, "t2", "두 번째 질문", "두 번째 답변")
    worker = threading.Thread(target=late_step)
    worker.start()
    worker.join()
    assert [m["content"] for m in s.history] == ["첫 질문", "두 번째 질문", "두 번째 답변"]


def test_a_discarded_turn_leaves_no_trace():
    s = _state()
    _turn(s, "t1", "환불", "환불 도와드릴게요.")
    _turn(s, "preview", "환불 말고 교환", "교환 도와드릴게요.")
    s.discard_turn("preview")
    assert [m["content"] for m in s.history] == ["환불", "환불 도와드릴게요."]
    with turn_scope("preview"):
        s.history.append({"role": "user", "content": "ghost"})
    assert len(s.history) == 2
