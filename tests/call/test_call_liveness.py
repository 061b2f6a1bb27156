"""Quiet faults never leave the caller in silence: an unplayable file, a worker that stops talking, a dialog
that is slow. Each is measured on what the simulated caller heard and when."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websockets

from agent.sim import CallScript
from tests.call.harness import EchoPolicy, make_stack, stored_call

SPEED = 3.0


class UnplayableSpeaker:
    """Writes the audio as usual but hands FreeSWITCH a path it cannot open (a lagging mount, a bad spool)."""

    def __init__(self, real: Any):
        self.real = real
        self.spool = real.spool

    def speak(self, call_id: str, utt_id: str, text: str, rate: int) -> Iterator[Any]:
        for chunk in self.real.speak(call_id, utt_id, text, rate):
            yield dataclasses.replace(chunk, path=Path("/nonexistent/spool") / Path(chunk.path).name)


def test_an_unplayable_reply_goes_to_a_human_instead_of_silence(tmp_path, db):
    stack = make_stack(tmp_path, db)
    stack.deps.speaker = UnplayableSpeaker(stack.deps.speaker)
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"},
                                   {"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert log.channel_vars["escalation_reason"] == "playback_failed"
        assert log.bugs_at_transfer == []
        spoke_end = log.utterances[0].t_last_voiced
        # Call time from the caller's last word to the transfer: well inside the 8 s a fault may take.
        assert (log.transfer.t - spoke_end) * SPEED < 8.0
        apology = [h for h in log.heard if h.t_start > spoke_end]
        assert apology and apology[0].status == "done"  # the caller heard the apology, not nothing
        call = stored_call(stack, db)
        kinds = [e["kind"] for e in call["events"]]
        assert kinds.count("playback_failed") >= 2 and call["end_reason"] == "transferred"
    finally:
        stack.stop()


class SilentWorker:
    """Accepts the fork like the worker, then never says anything again (a hung process, sockets open)."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _serve(self, ws: Any) -> None:
        async for _ in ws:
            pass

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with websockets.serve(self._serve, "127.0.0.1", 0, subprotocols=["audio.drachtio.org"]) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    def __enter__(self) -> SilentWorker:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)


def test_a_worker_that_stops_talking_is_noticed_within_seconds(tmp_path, db):
    with SilentWorker() as worker:
        stack = make_stack(tmp_path, db, worker=False, fork_url=f"ws://127.0.0.1:{worker.port}")
        try:
            (log,) = stack.sim(speed=1.0).run_calls([CallScript(steps=[{"expect_transfer": {"timeout_s": 20}}])])
            assert not log.errors, log.errors
            assert log.fork.connected and log.channel_vars["escalation_reason"] == "worker_unavailable"
            assert log.bugs_at_transfer == []  # the hung worker's fork is stopped, not carried into the queue
            # Connected at once; no heartbeat → lost after fork_heartbeat_timeout_s (2.5 s), not after 20 s+.
            assert log.transfer.t - log.fork.t_connected < 8.0
            call = stored_call(stack, db)
            reasons = [e["detail"].get("reason", "") for e in call["events"] if e["kind"] == "fork_failed"]
            assert reasons and "heartbeat" in reasons[0]
        finally:
            stack.stop()


def test_a_slow_dialog_gets_fillers_and_the_caller_never_waits_3_s_in_silence(tmp_path, db):
    stack = make_stack(tmp_path, db, policy=EchoPolicy(first_say_delay_s=7.0))
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "환불 가능한가요"}, {"wait_playback": {}},
                                   {"wait_idle": {"settle_ms": 3000, "timeout_s": 30}}, "hangup"])
        (log,) = stack.sim(speed=1.0).run_calls([script])
        assert not log.errors, log.errors
        spoke_end = log.utterances[0].t_last_voiced
        heard = sorted((h for h in log.heard if h.t_start > spoke_end), key=lambda h: h.t_start)
        # Silence the caller sat through: from their last word to the first audio, and between two playbacks.
        edges = [spoke_end] + [t for h in heard for t in (h.t_start, h.t_stop)]
        silences = [b - a for a, b in zip(edges[::2], edges[1::2], strict=False)]
        assert silences and max(silences) < 3.0, silences
        call = stored_call(stack, db)
        agent = [(t["source"], t["text"]) for t in call["turns"]
                 if t["speaker"] == "agent" and t["source"] != "greeting"]
        c = stack.cfg.controller
        assert agent[:2] == [("filler", c.slow_filler), ("filler", c.slow_filler_more)]
        assert agent[2][0] == "policy"
    finally:
        stack.stop()
