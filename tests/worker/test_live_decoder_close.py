"""A live decoder that is behind when the call ends stops: the audio still queued is not decoded for nobody."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect

from agent.config import parse_config
from agent.engines.asr.base import AsrContext, AsrResult
from agent.media.resample import resample
from agent.ops.bench.calls import render_speech
from agent.worker.live import BATCH_S, LiveDecoder
from agent.worker.server import WorkerThread

RATE = 16000
BATCH = bytes(int(BATCH_S * RATE) * 2)


class SlowUtterance:
    """A decoder slower than real time: each accept waits until the test lets it go."""

    def __init__(self, engine: SlowEngine):
        self.engine = engine

    def accept(self, pcm: np.ndarray) -> None:
        self.engine.started.release()
        self.engine.gate.wait(10)
        self.engine.accepted += len(pcm)
        self.engine.batches += 1

    def result(self) -> AsrResult:
        return AsrResult("", "slow", ())


class SlowEngine:
    name = "slow"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.accepted = 0
        self.batches = 0

    def open_utterance(self, rate: int, context: AsrContext) -> SlowUtterance:
        return SlowUtterance(self)


def test_close_drops_the_jobs_behind_and_leaves_no_task():
    engine = SlowEngine()

    async def call() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            live = LiveDecoder(engine, RATE, AsrContext(call_id="c"), pool)
            live.begin(1, b"")
            for _ in range(20):  # 4 s of speech while the decoder is stuck on its first batch
                live.feed(BATCH)
            await asyncio.to_thread(engine.started.acquire, True, 10)  # the first batch is in the decoder
            live.close()  # the caller hung up
            engine.gate.set()
            for _ in range(100):  # let whatever would still run, run
                await asyncio.sleep(0.01)
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert pending == []

    asyncio.run(call())
    # Only the batch already inside the decoder was decoded, not the 19 behind it.
    assert engine.accepted == len(BATCH) // 2


def test_an_open_call_still_decodes_every_batch():
    engine = SlowEngine()
    engine.gate.set()

    async def call() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            live = LiveDecoder(engine, RATE, AsrContext(call_id="c"), pool)
            live.begin(1, b"")
            for _ in range(5):
                live.feed(BATCH)
            result = live.end(1)
            assert result is not None
            await result

    asyncio.run(call())
    assert engine.accepted == 5 * len(BATCH) // 2


def test_a_hangup_stops_the_worker_decoding_that_call(tmp_path):
    """Through the worker: the caller speaks 3 s while the decoder is stuck, then the connection drops."""
    wav = render_speech("배송 조회 부탁드려요. 주문 번호는 일이삼사오 입니다.", tmp_path / "speech.wav")
    audio, rate = sf.read(wav, dtype="int16")
    pcm = resample(np.asarray(audio, dtype=np.int16), rate, RATE).tobytes()
    engine = SlowEngine()
    cfg = parse_config({})
    cfg = dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, listen=("127.0.0.1", 0)))
    with WorkerThread(cfg, engine) as worker:
        async def call() -> None:
            async with connect(f"ws://127.0.0.1:{worker.port}/c1", subprotocols=["audio.drachtio.org"]) as ws:
                await ws.send(json.dumps({"call_id": "c1", "rate": RATE}))
                for k in range(0, len(pcm), 640):
                    await ws.send(pcm[k:k + 640])
                    await asyncio.sleep(0.005)
                await asyncio.to_thread(engine.started.acquire, True, 30)  # a batch is inside the decoder
                ws.transport.abort()  # the hangup: FreeSWITCH closes without a close frame

        asyncio.run(call())
        deadline = time.monotonic() + 30
        while worker.stats()["active"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.stats()["active"] == 0
        engine.gate.set()
        time.sleep(1.0)  # room for a chain that was not cancelled to run (it would only add accepts)
    # The batch inside the decoder at the hangup, none of the ~3 s queued behind it.
    assert engine.batches == 1 and engine.accepted < len(pcm) // 2 // 4
