"""Live partials: the worker relays vibevoice-streaming partials to FreeSWITCH as non-final transcriptions."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import numpy as np
from vv_servers import FakeStreamingAsr
from websockets.asyncio.client import connect

from agent.config import parse_config
from agent.engines.asr.vibevoice_streaming import create
from agent.worker.server import WorkerThread


async def _call(port: int, audio: np.ndarray) -> list[dict]:
    received: list[dict] = []
    async with connect(f"ws://127.0.0.1:{port}/call-p", subprotocols=["audio.drachtio.org"]) as ws:
        await ws.send(json.dumps({"call_id": "call-p", "rate": 16000, "industry": "telecom"}))
        for start in range(0, audio.size, 320):
            await ws.send(audio[start:start + 320].tobytes())
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            try:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
            except TimeoutError:
                if any(m.get("type") == "transcription" for m in received):
                    break
    return received


def test_partials_reach_freeswitch_as_non_final_transcriptions(tmp_path, streaming_server: FakeStreamingAsr):
    engine = create({"base_urls": [streaming_server.url], "final_timeout_s": 5.0},
                    "worker.asr.engines.vibevoice-streaming")
    cfg = parse_config({}, base_dir=str(tmp_path))
    cfg = dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, listen=("127.0.0.1", 0)))
    worker = WorkerThread(cfg, engine).start()
    try:
        t = np.arange(int(1.6 * 16000)) / 16000
        audio = (12000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
        messages = asyncio.run(_call(worker.port, audio))
    finally:
        worker.stop()
    partials = [m["data"] for m in messages if m.get("type") == "transcription" and not m["data"]["final"]]
    assert [p["text"] for p in partials[:2]] == ["말0", "말0 말1"]
    assert all(p["engine"] == "vibevoice-streaming" for p in partials)
