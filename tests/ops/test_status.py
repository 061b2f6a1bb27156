"""The operator's view: `/ready` and `/status` on the ops listener, `callagent status`, `callagent tail`."""

from __future__ import annotations

import io
import threading

import httpx
import pytest

from agent.ops.metrics import ControllerCollector, serve_metrics
from agent.ops.status import OpsServer, add_last_turns, drain_and_wait, fetch_status, render_status
from agent.ops.tail import TailError, tail
from agent.sim import CallScript
from tests.call.harness import make_stack
from tests.ops.test_drain import SPEED, SimLoop, wait_for


@pytest.fixture
def live_stack(tmp_path, db):
    stack = make_stack(tmp_path, db)
    controller = stack.controller.controller
    ops = OpsServer(controller, serve_metrics(ControllerCollector(controller), None), ("127.0.0.1", 0),
                    drain=stack.controller.drain).start()
    sim = SimLoop(stack.sim(speed=SPEED))
    yield stack, ops, sim
    sim.close()
    ops.stop()
    stack.stop()


def test_status_lists_live_calls_and_ready_turns_false_on_drain(live_stack, db):
    stack, ops, sim = live_stack
    url = f"http://127.0.0.1:{ops.port}"
    assert httpx.get(f"{url}/ready").status_code == 200
    talk_then_hold = [{"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"}, {"wait_idle": {}}, {"sleep": 600}]
    future = sim.call(CallScript(steps=talk_then_hold, variables={"callagent_industry": "banking"}))
    a = stack.controller.controller
    wait_for(lambda: any(c.session is not None and c.session.state == "active" for c in a.calls.values()))
    (host,) = fetch_status([url])
    assert host["active"] == 1 and host["accepting"] and not host["draining"]
    (call,) = host["calls"]
    uuid = next(iter(sim.sim.channels))
    assert call["call_id"] == uuid and call["state"] == "active" and call["industry"] == "banking"
    assert call["age_s"] >= 0
    def replied() -> bool:
        stack.deps.store.flush(5)
        add_last_turns(db, [host])
        return call.get("last_turn", {}).get("speaker") == "agent" and "배송 조회" in call["last_turn"]["text"]

    wait_for(replied)
    assert call["last_turn"]["text"].endswith("…") and call["last_turn"]["ago_s"] >= 0  # cut at 40 characters
    text = render_status([host, {"url": "http://127.0.0.1:9", "error": "ConnectError: refused"}])
    assert uuid in text and "1/200 calls" in text and "UNREACHABLE" in text and "last: agent" in text
    assert "callagent_calls_active 1.0" in httpx.get(f"{url}/metrics").text

    assert httpx.post(f"{url}/drain").status_code == 202  # what the Kubernetes preStop hook does
    wait_for(lambda: httpx.get(f"{url}/ready").status_code == 503)  # not ready from the drain's first moment
    (host,) = fetch_status([url])
    assert host["draining"] and not host["accepting"] and host["active"] == 1
    assert drain_and_wait(url, wait_s=0.3, poll_s=0.1) == 1  # a call is still up
    sim.hang_up(uuid)
    future.result(30)
    assert drain_and_wait(url, wait_s=30, poll_s=0.1) == 0
    assert stack.controller.join(30)


def test_tail_follows_a_call_as_it_happens(tmp_path, db):
    stack = make_stack(tmp_path, db)
    sim = SimLoop(stack.sim(speed=SPEED))
    out = io.StringIO()
    try:
        talk = [{"wait_idle": {}}, {"sleep": 2}, {"say_text": "배송 조회 부탁드려요"}, {"wait_idle": {}}, "hangup"]
        future = sim.call(CallScript(steps=talk, variables={"callagent_industry": "telecom"}))
        wait_for(lambda: bool(sim.sim.channels))
        uuid = next(iter(sim.sim.channels))

        def has_row() -> bool:
            stack.deps.store.flush(5)
            with db.connection() as conn:
                return conn.execute("SELECT 1 FROM calls WHERE call_id = %s", (uuid,)).fetchone() is not None

        wait_for(has_row)
        result: list[int] = []
        follower = threading.Thread(target=lambda: result.append(tail(db, uuid[:8], out, poll_s=0.1,
                                                                      max_wait_s=60)))
        follower.start()
        log = future.result(60)
        follower.join(60)
        assert not log.errors and result == [0]
    finally:
        sim.close()
        stack.stop()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(f"call {uuid} industry=telecom started")
    said = [i for i, line in enumerate(lines) if "caller 배송 조회 부탁드려요" in line]
    assert said, lines
    assert any("agent  네, 배송 조회 부탁드려요 말씀이시군요." in line for line in lines[said[0]:]), lines
    assert lines[-1].split("  ", 1)[1] == "call ended: caller_hangup"


def test_tail_unknown_call(db):
    with pytest.raises(TailError):
        tail(db, "no-such-call", io.StringIO(), follow=False)
