"""Worker memory under load and abuse, measured with psutil: `python -m agent.ops.bench.workermem [--calls 50]`.

Starts the worker as a child process with the configured ASR engine (Vosk by default) and measures its RSS:
after start (the model loaded once), after each round of calls (real speech, decoded), under a 1 MiB-frame
flood, and with 1,000 idle connections open. Prints one JSON object (docs/reliability.md holds the numbers).

`--minutes N` is the worker soak instead: rounds of ROUND calls back to back for N minutes, RSS sampled every
30 s, and the verdict of agent.ops.bench.soak (slope over the last half, max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent.config import load_config
from agent.media.resample import resample
from agent.ops.bench import calls as c
from agent.ops.bench import soak
from agent.ops.bench.stack import Child

RATE = 16000
ROUND = 5  # calls at once (a loaded 2-core machine decodes 5 live Vosk streams in time)
FLOOD_S = 10.0
IDLE = 1000
SPEECH = "배송 조회 부탁드려요. 주문 번호는 일이삼사오 입니다."


def _mib(proc: psutil.Process) -> float:
    return round(proc.memory_info().rss / 2**20, 1)


async def _call(port: int, i: int, pcm: bytes) -> bool:
    """One forked call: metadata, the speech and 1.5 s of silence in 20 ms frames, until the final transcript."""
    frame = RATE // 50 * 2
    audio = pcm + bytes(int(RATE * 1.5) * 2)
    async with connect(f"ws://127.0.0.1:{port}/mem-{i}", subprotocols=["audio.drachtio.org"]) as ws:
        await ws.send(json.dumps({"call_id": f"mem-{i}", "rate": RATE, "lang": "ko"}))
        for k in range(0, len(audio), frame):  # at real time, as FreeSWITCH sends it
            await ws.send(audio[k:k + frame])
            await asyncio.sleep(0.02)

        async def keep_streaming() -> None:  # FreeSWITCH streams silence too: the fork is never idle
            while True:
                await asyncio.sleep(0.02)
                await ws.send(bytes(frame))

        streaming = asyncio.create_task(keep_streaming())
        try:
            async with asyncio.timeout(60):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("type") == "transcription" or msg.get("event") == "asr_error":
                        return msg.get("type") == "transcription"
        except (TimeoutError, ConnectionClosed):
            return False
        finally:
            streaming.cancel()


async def _flood(port: int, seconds: float) -> dict[str, int]:
    sent = closed = 0
    end = time.monotonic() + seconds
    frame = bytes(1 << 20)
    while time.monotonic() < end:
        try:
            async with connect(f"ws://127.0.0.1:{port}/flood", max_size=None) as ws:
                await ws.send(json.dumps({"call_id": "flood", "rate": RATE}))
                while time.monotonic() < end:
                    await ws.send(frame)
                    sent += 1
        except Exception:  # noqa: BLE001 - being closed by the worker is the expected outcome
            closed += 1
    return {"frames_sent": sent, "closed": closed}


def soak_rounds(worker: Child, port: int, pcm: bytes, minutes: float,
                sample_s: float = soak.SAMPLE_S) -> dict[str, Any]:
    """Rounds of ROUND real-time calls until `minutes` are up; RSS every `sample_s` seconds, from this loop.

    The worker counts its live objects every `sample_s` (census); it is also left idle for a census after
    one warm-up round and after the last round, so objects kept per call show apart from calls in flight."""
    proc = worker.proc
    samples: list[tuple[float, float]] = []
    served = placed = 0
    idle_s = sample_s + 5

    async def main() -> None:
        nonlocal served, placed
        await asyncio.gather(*(_call(port, 100000 + k, pcm) for k in range(ROUND)))  # warm-up: pool, arenas
        await asyncio.sleep(idle_s)
        origin = time.monotonic()
        deadline = origin + minutes * 60

        async def sample() -> None:
            while True:
                samples.append((round(time.monotonic() - origin, 1), _mib(proc)))
                await asyncio.sleep(sample_s)

        sampler = asyncio.create_task(sample())
        while time.monotonic() < deadline:
            done = await asyncio.gather(*(_call(port, placed + k, pcm) for k in range(ROUND)))
            placed += ROUND
            served += sum(done)
        sampler.cancel()
        samples.append((round(time.monotonic() - origin, 1), _mib(proc)))
        await asyncio.sleep(idle_s)

    wall_origin = time.time()
    asyncio.run(main())
    duration = samples[-1][0]
    census = worker.census()
    idle = [r for r in census[1:] if not r.get("active")]  # census[0] is from before any call
    kept = None
    if len(idle) >= 2 and placed:  # first idle census after the warm-up, last one after the last round
        kept = round((idle[-1]["objects"] - idle[0]["objects"]) / placed, 2)
    return {"minutes": round(duration / 60, 1), "calls": placed, "transcripts": served,
            "rss": soak.memory_verdict(samples, duration_s=duration, window_min=min(20.0, round(duration / 60, 1))),
            "objects": soak.objects_verdict(census, wall_origin, duration) if census else None,
            "idle_objects": [(round(r["t"] - wall_origin), r["objects"]) for r in idle],
            "objects_kept_per_call": kept,
            "census": [(round(r["t"] - wall_origin), r["objects"], r.get("tasks"), r.get("active")) for r in census],
            "samples": samples}


def run(config: Path | None, calls: int, minutes: float | None = None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="callagent-workermem-"))
    cfg = load_config(config)
    doc = {"log_level": "WARNING", "worker": {"listen": "127.0.0.1:9", "asr": {"engine": cfg.worker.asr_engine}},
           "store": {"spool_dir": str(work / "db-spool")}}
    path = work / "callagent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    wav = c.render_speech(SPEECH, work / "speech.wav")
    audio, rate = sf.read(wav, dtype="int16")
    pcm = resample(np.asarray(audio, dtype=np.int16), rate, RATE).tobytes()
    worker = Child("worker", path, work, [], None, soak.SAMPLE_S if minutes else None)
    out: dict[str, Any] = {"engine": cfg.worker.asr_engine, "calls": calls}
    try:
        port = int(worker.wait_ready()["port"])
        proc = worker.proc
        out["rss_mib_started"] = _mib(proc)
        if minutes:
            out.update(soak=soak_rounds(worker, port, pcm, minutes))
            return out
        rounds, answered = [], 0
        for r in range(0, calls, ROUND):
            async def one_round(base: int = r) -> list[bool]:
                return await asyncio.gather(*(_call(port, base + k, pcm) for k in range(min(ROUND, calls - base))))
            answered += sum(asyncio.run(one_round()))
            rounds.append(_mib(proc))
        out.update(rss_mib_after_each_round=rounds, transcripts=answered)
        if len(rounds) > 2:  # the first rounds grow the thread pool and its allocator arenas: not per call
            out["growth_kib_per_call_after_second_round"] = round(
                (rounds[-1] - rounds[1]) * 1024 / (calls - 2 * ROUND), 1)
        peak = [out["rss_mib_started"]]
        flood_task: dict[str, int] = {}

        async def flood_and_watch() -> None:
            task = asyncio.create_task(_flood(port, FLOOD_S))
            while not task.done():
                peak.append(_mib(proc))
                await asyncio.sleep(0.2)
            flood_task.update(task.result())

        before = _mib(proc)
        asyncio.run(flood_and_watch())
        out["flood"] = {**flood_task, "rss_mib_before": before, "rss_mib_peak": max(peak), "after": _mib(proc)}
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE * 4), hard))
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE)]
        time.sleep(1.0)
        served = asyncio.run(_call(port, 9999, pcm))  # a real call while 1,000 sockets sit idle
        out["idle"] = {"held": len(held), "rss_mib": _mib(proc), "worker_fds": proc.num_fds(),
                       "call_served_meanwhile": served}
        for s in held:
            s.close()
    finally:
        out["worker_stats"] = worker.stop().get("stats")  # heap trims, timeouts: what the numbers went with
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m agent.ops.bench.workermem")
    p.add_argument("--config", default=None)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--minutes", type=float, default=None, help="a soak: calls for this long, RSS every 30 s")
    args = p.parse_args()
    print(json.dumps(run(Path(args.config) if args.config else None, args.calls, args.minutes), indent=1))


if __name__ == "__main__":
    main()
