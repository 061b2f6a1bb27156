"""Several agent hosts behind FreeSWITCH's `socket a|b`, and a graceful drain, on the simulator.

FreeSWITCH moves to the next host only when the TCP connect fails (freeswitch.md §1.3), so a full or draining
controller must refuse connections; `connect`+`exit` would send the caller to the human queue instead.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest

from agent.call.controller import ControllerThread
from agent.sim import CallScript, FreeSwitchSim
from agent.store.calls import list_calls
from tests.call.harness import Stack, make_stack

SPEED = 2.0
HOLD = [{"wait_idle": {}}, {"sleep": 600}]  # a caller who stays on the line until the test hangs up


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


class SocketHosts:
    """Which host of the dialplan's `socket hostA|hostB async full` took each call (the simulator dials them in
    order and moves on only when a connect fails, as FreeSWITCH does)."""

    def __init__(self, sim: FreeSwitchSim):
        self.sim = sim
        self.seen: dict[str, int] = {}

    @property
    def served_by(self) -> dict[str, int]:
        for uuid, ch in list(self.sim.channels.items()):
            if uuid not in self.seen and ch.listener is not None and ch.listener.connected.is_set():
                self.seen[uuid] = ch.log.dials[-1][1]
        return self.seen


class SimLoop:
    """The simulator on its own asyncio loop in a thread, so the test can start calls one at a time."""

    def __init__(self, sim: FreeSwitchSim):
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, script: CallScript):
        return asyncio.run_coroutine_threadsafe(self.sim.run_call(script), self.loop)

    def hang_up(self, uuid: str) -> None:
        channel = self.sim.channels.get(uuid)
        if channel is not None:
            self.loop.call_soon_threadsafe(functools.partial(channel.hangup, "NORMAL_CLEARING", by="caller"))

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def second_controller(stack: Stack) -> ControllerThread:
    return ControllerThread(stack.deps).start()


@pytest.fixture
def two_hosts(tmp_path, db):
    stack = make_stack(tmp_path, db, overrides={"controller": {"max_calls": 2}})
    b = second_controller(stack)
    fs = FreeSwitchSim([("127.0.0.1", stack.controller.port), ("127.0.0.1", b.port)], speed=SPEED)
    sim, hosts = SimLoop(fs), SocketHosts(fs)
    yield stack, b, hosts, sim
    sim.close()
    b.stop()
    stack.stop()


def live(thread: ControllerThread) -> int:
    assert thread.controller is not None
    return thread.controller.active


def test_full_host_refuses_so_calls_move_to_the_host_with_room(two_hosts):
    stack, b, hosts, sim = two_hosts
    a = stack.controller
    futures = []
    for n in range(1, 5):
        futures.append(sim.call(CallScript(name=f"call{n}", steps=HOLD)))
        wait_for(lambda n=n: live(a) + live(b) == n and len(hosts.served_by) == n)
    # A is full: its port refuses (a real TCP connect), so FreeSWITCH would try B; B is full too now.
    assert live(a) == 2 and live(b) == 2
    assert refused(a.port) and refused(b.port)
    assert a.controller.rejected == 1 and b.controller.rejected == 1
    overflow_log = sim.call(CallScript(name="no-room", steps=[{"sleep": 1}])).result(30)
    assert overflow_log.dials == [("127.0.0.1", a.port), ("127.0.0.1", b.port)]  # tried A, then B
    assert overflow_log.ended_by == "agent_unreachable" and overflow_log.fell_through  # no room anywhere

    uuids = list(hosts.served_by)
    assert [hosts.served_by[u] for u in uuids] == [a.port, a.port, b.port, b.port]
    sim.hang_up(uuids[0])  # a call on A ends: A listens again and takes the next call
    wait_for(lambda: live(a) == 1 and a.controller.accepting)
    futures.append(sim.call(CallScript(name="call5", steps=HOLD)))
    wait_for(lambda: len(hosts.served_by) == 5 and live(a) == 2)
    assert hosts.served_by[list(hosts.served_by)[-1]] == a.port
    for uuid in hosts.served_by:
        sim.hang_up(uuid)
    logs = [f.result(30) for f in futures]
    assert not any(log.fell_through or log.transfer for log in logs)  # nobody went to humans while room existed
    assert [log.dials for log in logs[2:4]] == [[("127.0.0.1", a.port), ("127.0.0.1", b.port)]] * 2
    assert all(not log.errors for log in logs), [log.errors for log in logs]


def test_drain_mid_load_loses_no_call(two_hosts, db):
    stack, b, hosts, sim = two_hosts
    a = stack.controller
    talk = [{"wait_idle": {}}, {"sleep": 6}, {"say_text": "배송 조회 부탁드려요"}, {"wait_idle": {}}, "hangup"]
    first = [sim.call(CallScript(name=f"a{n}", steps=talk)) for n in range(2)]
    wait_for(lambda: live(a) == 2 and all(c.session is not None and c.session.state == "active"
                                          for c in a.controller.calls.values()))
    a.drain()
    wait_for(lambda: not a.controller.ready)
    snapshot = a.controller.snapshot()
    assert snapshot["draining"] and snapshot["active"] == 2  # drained mid-call, both calls still up
    assert refused(a.port)
    later = sim.call(CallScript(name="after-drain", steps=[{"wait_idle": {}}, "hangup"])).result(60)
    assert later.dials[-1] == ("127.0.0.1", b.port) and not later.fell_through

    logs = [f.result(60) for f in first]
    assert a.join(30), "the drained controller did not stop after its last call"
    for log in logs:
        assert not log.errors, log.errors
        assert log.dials == [("127.0.0.1", a.port)]
        assert not log.fell_through and log.transfer is None and log.ended_by == "caller"
        replies = [h for h in log.heard if h.headers.get("utt_id", "").startswith("r")]
        assert replies and replies[-1].status == "done"  # the turn after the drain was answered in full
    assert stack.deps.store.flush(10)
    rows = {c["call_id"]: c for c in list_calls(db, 10)}
    assert {rows[log.uuid]["end_reason"] for log in logs} == {"caller_hangup"}


def test_drain_timeout_hands_live_calls_to_humans(tmp_path, db, monkeypatch):
    stack = make_stack(tmp_path, db, overrides={"controller": {"drain_timeout_s": 0.5}})
    sim = SimLoop(stack.sim(speed=SPEED))
    try:
        a = stack.controller
        future = sim.call(CallScript(steps=[{"wait_idle": {}}, {"expect_transfer": {"timeout_s": 60}}]))
        wait_for(lambda: live(a) == 1 and all(c.session is not None and c.session.state == "active"
                                              for c in a.controller.calls.values()))
        a.drain()
        log = future.result(60)
        assert not log.errors, log.errors
        assert log.transfer is not None and log.transfer.via != "dialplan"  # a hand-off, not a dropped socket
        assert log.channel_vars["escalation_reason"] == "agent_draining"
        assert a.join(30)
    finally:
        sim.close()
        stack.stop()



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_drains_the_running_controller_process(tmp_path, db):
    """`callagent run` as installed: SIGTERM → refused at once, /ready 503, the live call finishes, exit 0."""
    import dataclasses
    import os
    import signal
    import subprocess
    import sys

    import httpx
    import psycopg
    import yaml

    from agent.config import parse_config
    from agent.engines.asr.fake import FakeAsr
    from agent.worker.server import WorkerThread

    cfg = parse_config({"worker": {"allow_text_injection": True}}, base_dir=str(tmp_path))
    worker = WorkerThread(dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, listen=("127.0.0.1", 0))),
                          FakeAsr(text="")).start()
    esl, ops = free_port(), free_port()
    parts = psycopg.conninfo.conninfo_to_dict(db.dsn)
    dsn = " ".join(f"{k}={v}" for k, v in sorted(parts.items(), key=lambda kv: kv[0] != "dbname"))
    config = tmp_path / "callagent.yaml"
    config.write_text(yaml.safe_dump({
        "log_format": "json",
        "controller": {"listen": f"127.0.0.1:{esl}", "metrics_listen": f"127.0.0.1:{ops}", "drain_timeout_s": 60,
                       "fork_url": f"ws://127.0.0.1:{worker.port}"},
    }))
    env = {**os.environ, "CALLAGENT_DB_DSN": dsn}
    proc = subprocess.Popen([sys.executable, "-m", "agent.ops.cli", "--config", str(config), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sim = SimLoop(FreeSwitchSim(("127.0.0.1", esl), speed=SPEED))
    url = f"http://127.0.0.1:{ops}"

    def ready() -> int:
        try:
            return httpx.get(f"{url}/ready", timeout=2).status_code
        except httpx.HTTPError:
            return 0

    try:
        wait_for(lambda: ready() == 200 or proc.poll() is not None, timeout=180)
        assert proc.poll() is None, proc.stdout.read()
        future = sim.call(CallScript(steps=HOLD))
        wait_for(lambda: httpx.get(f"{url}/status", timeout=2).json()["active"] == 1)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: ready() == 503)
        assert refused(esl)  # FreeSWITCH would try the next host now
        status = httpx.get(f"{url}/status", timeout=2).json()
        assert status["draining"] and status["active"] == 1 and status["calls"][0]["state"] == "active"
        assert proc.poll() is None  # still up for the live call
        sim.hang_up(status["calls"][0]["call_id"])
        log = future.result(60)
        assert proc.wait(60) == 0
        assert not log.errors and not log.fell_through and log.ended_by == "caller"
        lines = [json.loads(line) for line in proc.stdout.read().splitlines() if line.startswith("{")]
        assert any(r["message"].startswith("draining: 1 live calls") for r in lines)
        with db.connection() as conn:
            row = conn.execute("SELECT end_reason FROM calls WHERE call_id = %s", (log.uuid,)).fetchone()
        assert row is not None and row["end_reason"] == "caller_hangup"  # written before the process exited
    finally:
        if proc.poll() is None:
            proc.kill()
        sim.close()
        worker.stop()
