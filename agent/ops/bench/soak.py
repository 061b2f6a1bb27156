"""`callagent bench load --minutes N [--calls C]`: C simulated calls at a time, back to back, for N minutes, through
the configured ASR engine (Vosk by default, really decoding Korean speech), with the RSS of the controller and the
worker sampled every 30 s and their live Python objects counted as often.

Memory is "flat" when, over the last half of the run, RSS grows by less than FLAT_MIB_PER_MIN (a least-squares
slope, so the allocator's swings do not decide it) and the live object count grows by less than FLAT_OBJECTS_SHARE
of its level (per-call state that is kept would grow it call by call).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from agent.config import Config
from agent.ops.bench import calls as c
from agent.ops.bench.stack import AgentStack, BenchDatabase
from agent.sim import CallScript, FreeSwitchSim

log = logging.getLogger(__name__)

DEFAULT_CALLS = 5           # at once: a loaded 2-core machine decodes 5 live Vosk streams in time
SAMPLE_S = 30.0
STAGGER_S = 3.0             # the first calls' starts are spread out, then each slot dials again at once
SETTLE_S = 2.0
FLAT_MIB_PER_MIN = 1.0
FLAT_OBJECTS_SHARE = 0.01
WORKER_WINDOW_MIN = 20.0    # the worker's figure over its last 20 minutes (the soak the worker is held to)
TURNS = 2


def slope_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None with fewer than two distinct times."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var * 60.0


def window(points: Sequence[tuple[float, float]], since_s: float) -> list[tuple[float, float]]:
    return [(t, v) for t, v in points if t >= since_s]


def memory_verdict(points: Sequence[tuple[float, float]], *, duration_s: float,
                   window_min: float | None = None) -> dict[str, Any]:
    """RSS (MiB) over time: start, max, end, and the slope over the last half (and over `window_min`)."""
    if not points:
        return {"samples": 0}
    half = window(points, duration_s / 2)
    slope = slope_per_min(half)
    out: dict[str, Any] = {
        "samples": len(points), "start_mib": points[0][1], "max_mib": max(v for _, v in points),
        "end_mib": points[-1][1], "slope_last_half_mib_per_min": None if slope is None else round(slope, 3),
        "flat": slope is not None and slope < FLAT_MIB_PER_MIN,
    }
    if window_min is not None:
        last = window(points, duration_s - window_min * 60)
        s = slope_per_min(last)
        out[f"slope_last_{window_min:g}_min_mib_per_min"] = None if s is None else round(s, 3)
        out[f"max_last_{window_min:g}_min_mib"] = max((v for _, v in last), default=None)
    return out


def objects_verdict(census: Sequence[dict[str, Any]], origin: float, duration_s: float) -> dict[str, Any]:
    """Live Python objects over time: flat when the last half's fitted growth is under FLAT_OBJECTS_SHARE."""
    points = [(row["t"] - origin, float(row["objects"])) for row in census]
    if len(points) < 2:
        return {"samples": len(points)}
    half = window(points, duration_s / 2)
    slope = slope_per_min(half)
    level = sum(v for _, v in half) / len(half) if half else 0.0
    span_min = (half[-1][0] - half[0][0]) / 60 if len(half) > 1 else 0.0
    growth = None if slope is None else slope * span_min
    first, last = census[0]["top_types"], census[-1]["top_types"]
    grew = {k: last[k] - first.get(k, 0) for k in last if last[k] - first.get(k, 0) > 0}
    return {
        "samples": len(points), "start": int(points[0][1]), "end": int(points[-1][1]),
        "max": int(max(v for _, v in points)), "slope_last_half_per_min": None if slope is None else round(slope, 1),
        "fitted_growth_last_half": None if growth is None else round(growth),
        "flat": growth is not None and level > 0 and growth < FLAT_OBJECTS_SHARE * level,
        "top_types_end": last, "top_types_grown": dict(sorted(grew.items(), key=lambda kv: -kv[1])[:8]),
        "threads_end": census[-1].get("threads"), "tasks_end": census[-1].get("tasks"),
    }


def soak_script(i: int, clips: Sequence[Path]) -> CallScript:
    """The greeting, then TURNS caller utterances (real recordings, a different pair per call), then hang up."""
    steps: list[Any] = [{"wait_idle": c.IDLE}]
    for k in range(TURNS):
        steps += [{"say_audio": {"path": str(clips[(TURNS * i + k) % len(clips)])}}, c.REPLY, {"wait_idle": c.IDLE}]
    steps.append("hangup")
    return CallScript(caller=f"0108880{i % 10000:04d}", variables={"callagent_industry": "ecommerce"},
                      steps=steps, name=f"soak-{i}")


class _Sampler:
    """RSS of both children every SAMPLE_S seconds, from a thread (the simulator's loop runs in this one)."""

    def __init__(self, stack: AgentStack, origin: float, every_s: float):
        self.stack, self.origin, self.every_s = stack, origin, every_s
        self.rows: list[dict[str, Any]] = []
        self.calls_done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)

    def start(self) -> None:
        self._take()
        self._thread.start()

    def _take(self) -> None:
        snap = self.stack.snapshot()
        self.rows.append({"t_s": round(time.monotonic() - self.origin, 1), "calls_done": self.calls_done,
                          **{f"{k}_mib": round(v.rss / 2**20, 1) for k, v in snap.items()}})

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._take()
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._take()


def run(cfg: Config, work_dir: Path, bench_db: BenchDatabase, *, minutes: float, calls: int = DEFAULT_CALLS,
        sample_s: float = SAMPLE_S) -> dict[str, Any]:
    from agent.sim.scenario import speech_dir

    work_dir.mkdir(parents=True, exist_ok=True)
    clips = [k.path for k in c.korean_clips(speech_dir())]
    if not clips:  # ../shared/speech absent: espeak-ng speech still exercises the recogniser
        clips = [c.render_speech(t, work_dir / f"turn-{i}.wav") for i, t in enumerate(c.TEXT_TURNS)]
    engine = cfg.worker.asr_engine
    stack = AgentStack(cfg, work_dir, bench_db.dsn, asr_engine=engine,
                       asr_options=cfg.worker.asr_options.get(engine, {}), max_calls=calls,
                       census_every_s=sample_s)
    outcomes: list[dict[str, Any]] = []
    try:
        time.sleep(SETTLE_S)
        origin = time.monotonic()
        wall_origin = time.time()
        sampler = _Sampler(stack, origin, sample_s)
        sampler.start()
        sim = FreeSwitchSim(stack.addr, speed=1.0, narrowband=True, temp_dir=work_dir / "sim")
        deadline = origin + minutes * 60
        numbers = itertools.count()

        async def slot(k: int) -> None:
            await asyncio.sleep(k * STAGGER_S)
            while time.monotonic() < deadline:
                lg = await sim.run_call(soak_script(next(numbers), clips))
                # Only a summary per call is kept: the bench process's memory is not what is measured.
                outcomes.append({"uuid": lg.uuid, "answered": lg.answered_at is not None,
                                 "transferred": lg.transfer is not None, "errors": lg.errors[:2]})
                sampler.calls_done = len(outcomes)

        async def main() -> None:
            await asyncio.gather(*(slot(k) for k in range(calls)))

        asyncio.run(main())
        sampler.stop()
        duration_s = time.monotonic() - origin
    finally:
        child = stack.stop()
    census = {role: stack.children()[role].census() for role in ("controller", "worker")}
    rows = sampler.rows
    points = {role: [(r["t_s"], r[f"{role}_mib"]) for r in rows] for role in ("controller", "worker")}
    errors = [e for o in outcomes for e in o["errors"]]
    result = {
        "soak": True, "minutes": round(duration_s / 60, 1), "concurrent_calls": calls,
        "engines": {"asr": child["worker"].get("engine", engine), "tts": cfg.tts.engine,
                    "dialog": stack.controller.ready.get("policy")},
        "clips": len(clips), "calls": len(outcomes), "answered": sum(o["answered"] for o in outcomes),
        "transferred": sum(o["transferred"] for o in outcomes), "call_errors": errors[:10],
        "call_error_count": len(errors), "sample_s": sample_s,
        "flat_definition": {"rss_slope_last_half_mib_per_min_below": FLAT_MIB_PER_MIN,
                            "objects_fitted_growth_last_half_share_below": FLAT_OBJECTS_SHARE},
        "controller": {"rss": memory_verdict(points["controller"], duration_s=duration_s),
                       "objects": objects_verdict(census["controller"], wall_origin, duration_s)},
        "worker": {"rss": memory_verdict(points["worker"], duration_s=duration_s,
                                         window_min=min(WORKER_WINDOW_MIN, round(duration_s / 60, 1))),
                   "objects": objects_verdict(census["worker"], wall_origin, duration_s),
                   "stats": child["worker"].get("stats")},
        "analytics": child["controller"].get("analytics"),
        "samples": rows,
        "census": {role: [(round(r["t"] - wall_origin), r["objects"], r.get("tasks"), r.get("active"))
                          for r in census[role]] for role in ("controller", "worker")},
        "agent_log_tail": {role: (child.get(role) or {}).get("log_tail") for role in ("controller", "worker")},
    }
    result["flat"] = all(result[r]["rss"].get("flat") and result[r]["objects"].get("flat")
                         for r in ("controller", "worker"))
    return result


def soak_md(r: dict[str, Any]) -> str:
    """The soak's table: one row per process."""
    lines = [f"Soak: {r['minutes']} min, {r['concurrent_calls']} calls at a time, {r['calls']} calls "
             f"({r['answered']} answered, {r['transferred']} handed to a person, {r['call_error_count']} script "
             f"errors); ASR {r['engines']['asr']}, TTS {r['engines']['tts']}.", "",
             "| Process | start MiB | max MiB | end MiB | slope last half MiB/min | objects start → end | "
             "objects flat | flat |", "|---|---|---|---|---|---|---|---|"]
    for role in ("controller", "worker"):
        m, o = r[role]["rss"], r[role]["objects"]
        lines.append(f"| {role} | {m.get('start_mib')} | {m.get('max_mib')} | {m.get('end_mib')} | "
                     f"{m.get('slope_last_half_mib_per_min')} | {o.get('start')} → {o.get('end')} | "
                     f"{o.get('flat')} | {m.get('flat') and o.get('flat')} |")
    w = r["worker"]["rss"]
    extra = [k for k in w if k.startswith("slope_last_") and k != "slope_last_half_mib_per_min"]
    if extra:
        lines.append(f"\nWorker over its last minutes: {extra[0]} = {w[extra[0]]}.")
    db = r.get("database")
    if db:
        lines.append(f"\n{db['calls']} calls ({db['analysed']} analysed, ₩{db['cost_krw']}) kept in "
                     f"`{db['name']}`: `{db['dashboard']}`")
    return "\n".join(lines)
