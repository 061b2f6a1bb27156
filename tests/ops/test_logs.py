"""Structured logs: the call id bound once reaches every greenlet of the call, secrets never reach the log,
and an idle or garbage connection is one warning line, not a traceback per connection."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time

import gevent
import pytest
from gevent.pool import Group

from agent.ops.logs import RepeatLimiter, add_redactor, bind_call, configure_logging
from tests.call.harness import make_stack


@pytest.fixture
def json_log():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    configure_logging("INFO", "json", buf)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def test_call_id_bound_once_reaches_child_greenlets_and_not_other_calls(json_log):
    log = logging.getLogger("agent.call.session")

    def call(uuid: str) -> None:
        bind_call(uuid)
        group = Group()
        group.spawn(lambda: group.spawn(log.info, "watchdog fired").join())  # a grandchild
        group.spawn(log.info, "turn started")
        group.join()

    gevent.joinall([gevent.spawn(call, "call-a"), gevent.spawn(call, "call-b")])
    log.info("server line")
    lines = json_log()
    by_call = {(r["call_id"], r["message"]) for r in lines}
    assert by_call >= {("call-a", "turn started"), ("call-a", "watchdog fired"),
                       ("call-b", "turn started"), ("call-b", "watchdog fired")}
    assert lines[-1]["call_id"] is None and lines[-1]["level"] == "INFO" and lines[-1]["logger"] == log.name


def test_asyncio_tasks_keep_their_own_call_id(json_log):
    log = logging.getLogger("agent.worker.server")

    async def conn(uuid: str) -> None:
        bind_call(uuid)
        await asyncio.sleep(0.01)
        log.info("frame")

    async def main() -> None:
        await asyncio.gather(conn("w-1"), conn("w-2"))
        log.info("idle")

    asyncio.run(main())
    assert sorted((r["call_id"] or "") for r in json_log()) == ["", "w-1", "w-2"]


def test_secrets_never_reach_the_log(json_log):
    add_redactor(lambda text: text.replace("900101-1234567", "******-*******"))
    log = logging.getLogger("agent.ops")
    log.info("db postgresql://callagent:s3cr3tpw@db:5432/callagent esl password=ClueCon2")
    log.info("sent auth ClueCon2")
    try:
        raise RuntimeError("token=abc123 for caller 900101-1234567")
    except RuntimeError:
        log.exception("failed with api_key: sk-live-xyz")
    text = json.dumps(json_log(), ensure_ascii=False)
    for secret in ("s3cr3tpw", "ClueCon2", "abc123", "sk-live-xyz", "900101-1234567"):
        assert secret not in text
    assert "postgresql://callagent:***@db:5432" in text and "Traceback" in text


def test_repeat_limiter_passes_the_first_of_a_kind_per_window():
    lim = RepeatLimiter(window_s=60)
    key = ("agent.call.session", "call %s failed", "ReplyTimeout")
    assert lim.allow(key, 0.0) == (True, 0)
    assert lim.allow(key, 1.0) == (False, 0)
    assert lim.allow(key, 59.0) == (False, 0)
    assert lim.allow(("other",), 2.0) == (True, 0)
    assert lim.allow(key, 61.0) == (True, 2)  # the next one says how many were dropped


def test_idle_connections_are_one_warning_line_not_tracebacks(tmp_path, db, json_log):
    stack = make_stack(tmp_path, db, worker=False, overrides={"controller": {"esl_reply_timeout_s": 0.2}})
    try:
        a = stack.controller
        for _ in range(3):  # a TCP health check or a port scanner: connects, never speaks ESL
            with socket.create_connection(("127.0.0.1", a.port)):
                deadline = time.monotonic() + 10
                while a.controller.active == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                while a.controller.active and time.monotonic() < deadline:
                    time.sleep(0.01)
        assert a.controller.active == 0 and a.controller.accepting
    finally:
        stack.stop()
    noisy = [r for r in json_log() if r["level"] in ("WARNING", "ERROR")]
    assert len(noisy) == 1, noisy
    assert noisy[0]["level"] == "WARNING" and "exc_info" not in noisy[0] and "Traceback" not in noisy[0]["message"]


def test_a_real_calls_lines_carry_its_uuid_without_the_session_binding_it(tmp_path, db, json_log):
    from agent.sim import CallScript

    stack = make_stack(tmp_path, db)
    try:
        logging.getLogger("agent").setLevel(logging.DEBUG)
        steps = [{"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"}, {"wait_idle": {}}, "hangup"]
        script = CallScript(steps=steps)
        (log,) = stack.sim(speed=3.0).run_calls([script])
        assert not log.errors
    finally:
        logging.getLogger("agent").setLevel(logging.NOTSET)
        stack.stop()
    during = [r for r in json_log() if r["logger"].startswith(("agent.call", "agent.esl"))
              and "listening" not in r["message"] and "stopped accepting" not in r["message"]]
    assert during, "the call logged nothing"
    assert {r["call_id"] for r in during} == {log.uuid}, during
