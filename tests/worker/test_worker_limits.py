"""The worker's limits over real loopback WebSockets: connection cap, idle timeout, frame size, fork token,
one engine for every call, rate-limited logs (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent.config import Config, WorkerConfig
from agent.engines.asr.fake import FakeAsr
from agent.worker import server as worker_server
from agent.worker.ratelimit import RateLimitedLog, TokenBucket
from agent.worker.server import WorkerThread, fork_token

SUBPROTOCOL = "audio.drachtio.org"
WAIT_S = 20.0
SILENCE = bytes(640)  # 20 ms at 16 kHz


def make_cfg(tmp_path: Path, **worker: object) -> Config:
    base = WorkerConfig(listen=("127.0.0.1", 0), hotwords_dir=str(tmp_path))
    return Config(worker=dataclasses.replace(base, **worker))


def meta(call_id: str = "call-1", **extra: object) -> str:
    return json.dumps({"call_id": call_id, "rate": 16000, "lang": "ko", **extra})


@pytest.fixture
def worker_for(tmp_path):
    started: list[WorkerThread] = []

    def start(engine: FakeAsr | None = None, **worker: object) -> WorkerThread:
        w = WorkerThread(make_cfg(tmp_path, **worker), engine or FakeAsr(text="네")).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():
            await asyncio.sleep(0.02)


async def closed_code(ws: ClientConnection) -> int | None:
    """Reads until the server closes; the close code it sent."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code


def test_over_the_connection_cap_a_fork_is_closed_with_1013(worker_for):
    w = worker_for(max_connections=2)

    async def main() -> int | None:
        url = f"ws://127.0.0.1:{w.port}/x"
        async with connect(url, subprotocols=[SUBPROTOCOL]) as a, connect(url, subprotocols=[SUBPROTOCOL]) as b:
            for ws, cid in ((a, "a"), (b, "b")):
                await ws.send(meta(cid))
                await ws.send(SILENCE)
            await until(lambda: w.stats()["active"] == 2)
            async with connect(url, subprotocols=[SUBPROTOCOL]) as c:
                code = await closed_code(c)
            assert a.close_code is None and b.close_code is None  # the calls in progress are untouched
        return code

    assert asyncio.run(main()) == worker_server.CLOSE_TRY_AGAIN_LATER
    assert w.stats()["over_cap"] == 1


def test_a_fork_without_audio_is_closed_after_the_idle_timeout(worker_for):
    w = worker_for(idle_timeout_s=0.5)

    async def main() -> int | None:
        async with connect(f"ws://127.0.0.1:{w.port}/x", subprotocols=[SUBPROTOCOL]) as ws:
            await ws.send(meta())
            await ws.send(SILENCE)  # then nothing: a hung peer
            return await closed_code(ws)

    assert asyncio.run(main()) == worker_server.CLOSE_GOING_AWAY
    assert w.stats()["idle_closed"] == 1
    asyncio.run(until(lambda: w.stats()["active"] == 0))


def test_a_1_mib_frame_closes_its_fork_and_the_next_fork_is_served(worker_for):
    w = worker_for()

    async def main() -> tuple[int | None, int | None]:
        url = f"ws://127.0.0.1:{w.port}/x"
        async with connect(url, subprotocols=[SUBPROTOCOL], max_size=None) as ws:
            await ws.send(meta())
            with pytest.raises(ConnectionClosed):
                for _ in range(4):  # the server closes on the first; later sends fail
                    await ws.send(bytes(1 << 20))
                    await asyncio.sleep(0.05)
                await ws.recv()
            big = ws.close_code
        async with connect(url, subprotocols=[SUBPROTOCOL]) as ok:
            await ok.send(meta("call-2"))
            await ok.send(SILENCE)
            await until(lambda: w.stats()["active"] == 1)
            still_open = ok.close_code
        return big, still_open

    big, still_open = asyncio.run(main())
    assert big == 1009 and still_open is None  # 1009: message too big


@pytest.mark.parametrize(("token", "accepted"), [(None, False), ("0" * 32, False), ("right", True)])
def test_a_fork_token_is_verified_when_the_secret_is_set(worker_for, monkeypatch, token, accepted):
    monkeypatch.setenv("TEST_FORK_SECRET", "s3cret")
    w = worker_for(fork_secret_env="TEST_FORK_SECRET", idle_timeout_s=60)
    extra = {} if token is None else {"token": fork_token("s3cret", "call-9") if token == "right" else token}

    async def main() -> tuple[list[dict], int | None]:
        async with connect(f"ws://127.0.0.1:{w.port}/x", subprotocols=[SUBPROTOCOL]) as ws:
            await ws.send(meta("call-9", **extra))
            await ws.send(SILENCE)
            if accepted:
                await until(lambda: w.stats()["active"] == 1 and w.stats()["messages"] >= 1)
                return [], ws.close_code
            received = []
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(WAIT_S):
                    while True:
                        received.append(json.loads(await ws.recv()))
            return received, ws.close_code

    received, code = asyncio.run(main())
    if accepted:
        assert code is None and w.stats()["bad_tokens"] == 0
    else:
        assert code == 1008 and w.stats()["bad_tokens"] == 1
        assert "token" in json.dumps(received)


def test_the_token_is_the_hmac_of_the_call_id():
    # `printf abc | openssl dgst -sha256 -hmac k`, first 32 hex characters
    assert fork_token("k", "abc") == "342e519ce0ad6c03a36b98eeb3f1d130db4813b9df4d1160eda488d712dc78ee"[:32]


def test_every_call_shares_one_engine(tmp_path, monkeypatch):
    built: list[FakeAsr] = []

    def create(_cfg: object) -> FakeAsr:
        built.append(FakeAsr(text="네"))
        return built[-1]

    monkeypatch.setattr(worker_server, "create_asr", create)
    w = WorkerThread(make_cfg(tmp_path)).start()
    try:
        async def main() -> None:
            url = f"ws://127.0.0.1:{w.port}/x"
            for i in range(5):
                async with connect(url, subprotocols=[SUBPROTOCOL]) as ws:
                    await ws.send(meta(f"call-{i}"))
                    await ws.send(SILENCE)
            await until(lambda: w.stats()["connections"] == 5 and w.stats()["active"] == 0)

        asyncio.run(main())
    finally:
        w.stop()
    assert len(built) == 1


def test_a_flood_of_one_log_line_is_rate_limited(caplog):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("flood"), per_s=1.0, burst=5, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="flood"):
        written = sum(limited.warning("fork rejected: %s", f"peer {i}") for i in range(1000))
        now[0] = 10.0
        assert limited.warning("fork rejected: %s", "later")
    assert written == 5 and limited.suppressed_total == 995
    assert len(caplog.records) == 6 and "995 similar lines suppressed" in caplog.records[-1].getMessage()


def test_token_bucket_refills_with_the_time_passed_in():
    bucket = TokenBucket(per_s=2.0, burst=2)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)


def _tone_burst(ms: int, rate: int = 16000) -> bytes:
    """A voiced-sounding burst (a vowel-like tone with harmonics) that webrtcvad takes for speech."""
    import numpy as np

    t = np.arange(rate * ms // 1000) / rate
    wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 720, 1100), start=1))
    return (wave / np.max(np.abs(wave)) * 12000).astype("<i2").tobytes()


def test_utterances_waiting_for_a_slow_asr_are_bounded(worker_for):
    """ASR far slower than the caller: at most max_pending_utterances wait; the oldest go, counted."""
    w = worker_for(FakeAsr(text="네", delay_s=3.0), max_pending_utterances=2)

    async def main() -> list[dict]:
        got: list[dict] = []
        async with connect(f"ws://127.0.0.1:{w.port}/call-1", subprotocols=[SUBPROTOCOL]) as ws:
            await ws.send(meta())
            for _ in range(6):  # six short utterances, each followed by more than the fallback silence
                speech = _tone_burst(600)
                for i in range(0, len(speech), 640):
                    await ws.send(speech[i:i + 640])
                for _ in range(60):
                    await ws.send(SILENCE)
            await until(lambda: w.stats()["utterances_dropped"] >= 1)
            for _ in range(300):  # keep the line alive while the remaining ones are recognised
                await ws.send(SILENCE)
                await asyncio.sleep(0.005)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(8):
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg.get("type") == "transcription" or msg.get("event") == "transcript":
                            got.append(msg)
        return got

    transcripts = asyncio.run(main())
    stats = w.stats()
    assert stats["utterances"] >= 5 and stats["utterances_dropped"] >= 1
    assert len(transcripts) <= stats["utterances"] - stats["utterances_dropped"]
