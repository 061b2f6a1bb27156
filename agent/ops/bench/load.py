"""`callagent bench load`: C concurrent calls streaming audio at real-time pace, the agent pinned to one core and
the simulator to another; CPU per call-minute, memory per call, late or dropped frames, per-turn overhead.

ASR is the fake engine (fixed text after a fixed delay) so the numbers are the agent's own cost, not Vosk's;
TTS is the configured engine (espeak-ng by default), its subprocess CPU counted apart.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.ops.bench import calls as c
from agent.ops.bench.stack import AgentStack, BenchDatabase, busy_cpu_s, other_cpu_share
from agent.ops.bench.stats import summary
from agent.sim import FreeSwitchSim

log = logging.getLogger(__name__)

DEFAULT_LEVELS = (25, 50, 100, 200)
QUICK_LEVELS = (10, 25)
TURNS = 2
FAKE_TEXT = "반품하고 싶어요"          # the scripted dialog answers it with two short sentences
FAKE_DELAY_S = 0.05
# All calls start within this: every level reaches full concurrency for most of its ~30 s, and turns are not all
# in the same instant (a real queue's arrivals are spread out).
RAMP_S = 10.0
SETTLE_S = 1.0
OVERHEAD_TARGET_MS = 10.0
PACKET_MS = 20.0
# Sustained = the worker keeps within one packet period of the audio. A lone scheduling hiccup on a shared
# machine puts it behind now and then at any load; overload keeps it behind, so a small share is tolerated.
LATE_TOLERANCE = 0.001
# A simulator stall (GC, a burst of call set-ups) makes a few packets late; more than this and it is the limit.
SIM_LATE_LIMIT = 0.001
SIM_BUSY_LIMIT = 0.9     # the simulator's process share of its core above which its sends slip


def _cores() -> tuple[int | None, int | None]:
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[1]) if len(cores) >= 2 else (None, None)


def run(cfg: Config, work_dir: Path, *, calls: int | None = None, quick: bool = False,
        minutes: float | None = None, keep_db: bool = True) -> dict[str, Any]:
    """The load levels, or with `minutes` the soak (agent.ops.bench.soak). The calls stay in the run's own
    database unless `keep_db` is false; the result says how to open them in `callagent dashboard`."""
    bench_db = BenchDatabase(cfg)
    try:
        if minutes:
            from agent.ops.bench import soak

            result = soak.run(cfg, work_dir, bench_db, minutes=minutes, calls=calls or soak.DEFAULT_CALLS)
        else:
            result = _levels(cfg, work_dir, bench_db, calls=calls, quick=quick)
        result["database"] = kept(bench_db) if keep_db else None
    except BaseException:
        if not keep_db:
            bench_db.drop()
        raise
    if not keep_db:
        bench_db.drop()
    return result


def kept(bench_db: BenchDatabase) -> dict[str, Any]:
    """What the run's database holds, and the commands to look at it and to drop it."""
    with bench_db.db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS calls, count(a.call_id) AS analysed, coalesce(sum(a.cost_krw), 0) AS cost_krw "
            "FROM calls LEFT JOIN call_analytics a USING (call_id)").fetchone()
    info = {"name": bench_db.name, "calls": row["calls"], "analysed": row["analysed"],
            "cost_krw": round(float(row["cost_krw"]), 2), "dashboard": bench_db.dashboard_command(),
            "drop": bench_db.drop_command()}
    log.info("load bench: %d calls (%d analysed) kept in database %s; see them with: %s",
             info["calls"], info["analysed"], bench_db.name, info["dashboard"])
    return info


def _levels(cfg: Config, work_dir: Path, bench_db: BenchDatabase, *, calls: int | None,
            quick: bool) -> dict[str, Any]:
    levels = [calls] if calls else list(QUICK_LEVELS if quick else DEFAULT_LEVELS)
    (work_dir / "load").mkdir(parents=True, exist_ok=True)
    clip = c.render_speech(FAKE_TEXT, work_dir / "load" / "caller.wav")
    agent_core, sim_core = _cores()
    original = os.sched_getaffinity(0)
    results: list[dict[str, Any]] = []
    try:
        if sim_core is not None:
            os.sched_setaffinity(0, {sim_core})  # this thread runs the simulator; threads started later inherit
        for n in levels:
            results.append(_level(cfg, work_dir / f"load-{n}", bench_db, n, clip, (agent_core, sim_core)))
            log.info("load bench: %d calls done (%s)", n, "sustained" if results[-1]["sustained"] else "not sustained")
        between = _refine(results) if not quick and not calls else None
        if between is not None:
            results.append(_level(cfg, work_dir / f"load-{between}", bench_db, between, clip,
                                  (agent_core, sim_core)))
            results.sort(key=lambda r: r["calls"])
    finally:
        os.sched_setaffinity(0, original)
    sustained = [r for r in results if r["sustained"]]
    best = max(sustained, key=lambda r: r["calls"]) if sustained else None
    per_min = best["cpu_s_per_call_minute"]["agent_total"] if best else None
    above = [r for r in results if not r["sustained"] and (best is None or r["calls"] > best["calls"])]
    first_failed = min(above, key=lambda r: r["calls"]) if above else None
    return {
        "engines": {"asr": f"fake ({FAKE_DELAY_S * 1000:.0f} ms, fixed text)", "tts": cfg.tts.engine,
                    "dialog": results[0]["dialog"] if results else None},
        "turns_per_call": TURNS, "ramp_s": RAMP_S, "agent_core": agent_core, "sim_core": sim_core,
        "late_tolerance": LATE_TOLERANCE, "levels": results,
        "max_sustained_calls_one_core": best["calls"] if best else None,
        "lowest_failed_level": first_failed["calls"] if first_failed else None,
        # True when that level failed only because the simulator could not keep time: a lower bound, then.
        "limited_by_simulator": bool(first_failed) and all(m.startswith("inconclusive")
                                                            for m in first_failed["limits"]),
        "highest_level_tested": max(r["calls"] for r in results),
        # What the measured CPU cost would allow if CPU were the only limit (an extrapolation, labelled so).
        "cpu_bound_calls_one_core": 60.0 / per_min if per_min else None,
    }


def _refine(results: list[dict[str, Any]]) -> int | None:
    """One more level halfway between the highest sustained level and the first failed one above it."""
    ok = [r["calls"] for r in results if r["sustained"]]
    failed = [r["calls"] for r in results if not r["sustained"] and (not ok or r["calls"] > max(ok))]
    if not ok or not failed:
        return None
    mid = round((max(ok) + min(failed)) / 2 / 5) * 5
    return mid if max(ok) < mid < min(failed) else None


def _level(cfg: Config, work_dir: Path, bench_db: BenchDatabase, n: int, clip: Path,
           cores: tuple[int | None, int | None]) -> dict[str, Any]:
    core, sim_core = cores
    stack = AgentStack(cfg, work_dir, bench_db.dsn, asr_engine="fake",
                       asr_options={"text": FAKE_TEXT, "delay_s": FAKE_DELAY_S}, max_calls=n, core=core)
    try:
        time.sleep(SETTLE_S)  # start-up work (model load, prompt cache) is not per-call cost
        before, machine_before = stack.snapshot(), busy_cpu_s()
        stack.start_sampling()
        sim = FreeSwitchSim(stack.addr, speed=1.0, narrowband=True, temp_dir=work_dir / "sim")
        started = time.monotonic()
        with c.quiet_gc():
            logs = sim.run_calls([c.load_script(i, clip, TURNS) for i in range(n)], stagger_s=RAMP_S / n)
        wall_s = time.monotonic() - started
        after, machine_after = stack.snapshot(), busy_cpu_s()
        stack.stop_sampling()
    finally:
        child = stack.stop()
    ids = {lg.uuid for lg in logs}
    rows = [r for r in bench_db.turns() if r["call_id"] in ids]
    def busy(name: str) -> float:
        return (machine_after[name] - machine_before[name]) / wall_s

    result = analyse(logs, rows, child, before, after, stack.peak_rss, wall_s=wall_s, calls=n,
                     dialog=stack.controller.ready.get("policy"), sim_cpu_share=busy("bench"),
                     sim_core_busy=None if sim_core is None else busy(f"core{sim_core}"))
    agent_s = sum(result["cpu_s"].values())
    result["other_cpu_core_share"] = other_cpu_share(machine_before, machine_after, agent_s, wall_s)
    if core is not None:
        result["agent_core_busy"] = busy(f"core{core}")
    return result


def analyse(logs: list, rows: list[dict[str, Any]], child: dict[str, Any], before: dict, after: dict,
            peak_rss: dict[str, int], *, wall_s: float, calls: int, dialog: str | None,
            sim_cpu_share: float | None = None, sim_core_busy: float | None = None) -> dict[str, Any]:
    minutes = c.call_minutes(logs)
    cpu = {
        "controller": after["controller"].cpu_s - before["controller"].cpu_s,
        "tts_subprocesses": after["controller"].children_cpu_s - before["controller"].children_cpu_s,
        "worker": after["worker"].cpu_s - before["worker"].cpu_s + after["worker"].children_cpu_s
        - before["worker"].children_cpu_s,
    }
    total_cpu = sum(cpu.values())
    fork = c.fork_totals(logs)
    wstats = child.get("worker", {})
    clock = wstats.get("frame_clock", {})
    worker_frames = int(wstats.get("stats", {}).get("frames", 0))
    replies = c.agent_turns(rows)
    errors = [e for lg in logs for e in lg.errors]
    late = clock.get("late_frames")
    result = {
        "calls": calls, "dialog": dialog, "wall_s": round(wall_s, 1), "call_minutes": round(minutes, 2),
        "answered": sum(1 for lg in logs if lg.answered_at is not None),
        "replies": len(replies), "expected_replies": calls * TURNS,
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_s_per_call_minute": {k: (v / minutes if minutes else None)
                                  for k, v in {**cpu, "agent_total": total_cpu}.items()},
        "agent_cpu_core_share": total_cpu / wall_s if wall_s else None,
        "rss_mib": {k: after[k].rss / 2**20 for k in ("controller", "worker")},
        "mem_per_call_kib": {k: (peak_rss[k] - before[k].rss) / 1024 / calls for k in ("controller", "worker")},
        "sim": fork,
        "sim_late_share": fork["packets_late"] / fork["packets_sent"] if fork["packets_sent"] else None,
        "sim_cpu_core_share": sim_cpu_share,
        "sim_core_busy": sim_core_busy,    # the simulator's core as a whole: other programs run there too
        "worker_frames": worker_frames,
        "dropped_frames": fork["packets_sent"] - worker_frames,
        "late_frames_at_worker": late,
        "frame_lateness_ms": clock.get("lateness_ms"),
        # The agent's share: how often the worker's event loop was more than a packet period behind. A frame
        # arriving then waits as long; frames the simulator sent late are late without the worker's doing.
        "worker_late_share": (wstats.get("loop_lag_ms") or {}).get("over_packet_share"),
        "worker_loop_lag_ms": wstats.get("loop_lag_ms"),
        "controller_loop_lag_ms": child.get("controller", {}).get("loop_lag_ms"),
        "overhead_ms": summary(c.overhead_ms(r) for r in replies),
        "first_audio_ms": summary(r.get("first_audio_ms") for r in replies),
        "v2v_ms": summary(v for lg in logs for v in c.voice_to_voice_ms(lg)),
        "call_errors": errors[:20], "call_error_count": len(errors),
        "transferred": sum(1 for lg in logs if lg.transfer is not None),
        "agent_log_tail": {role: (child.get(role) or {}).get("log_tail") for role in ("controller", "worker")},
    }
    result["limits"] = _limits(result)
    result["sustained"] = not result["limits"]
    over = result["overhead_ms"]["p99"]
    result["overhead_p99_within_target"] = None if over is None else over <= OVERHEAD_TARGET_MS
    return result


def pct(share: float | None) -> str:
    return "?" if share is None else f"{share * 100:.0f} %"


def _limits(r: dict[str, Any]) -> list[str]:
    """Why a level does not count as sustained; empty when it does."""
    out = []
    late_share = r["worker_late_share"]
    if late_share is None:
        out.append("the worker reported no loop timing")
    elif late_share > LATE_TOLERANCE:
        out.append(f"the worker fell more than {PACKET_MS:g} ms behind {late_share * 100:.2f} % of the time")
    if r["dropped_frames"] > 0:
        out.append(f"{r['dropped_frames']} frames sent but not processed")
    if r["answered"] < r["calls"]:
        out.append(f"{r['calls'] - r['answered']} calls not answered")
    if r["call_error_count"]:
        out.append(f"{r['call_error_count']} call script errors")
    if r["replies"] < r["expected_replies"]:
        out.append(f"{r['expected_replies'] - r['replies']} caller turns without a reply")
    if r.get("transferred"):
        out.append(f"{r['transferred']} calls handed to a person (the agent's log tail is in the JSON)")
    if (r["sim_late_share"] or 0) > SIM_LATE_LIMIT or (r.get("sim_cpu_core_share") or 0) > SIM_BUSY_LIMIT:
        # Alone, a slipping simulator leaves the level undecided; next to the agent's own failure, it is a note.
        late = r["sim"]["packets_late"]
        out.append(f"the simulator sent {late} packets late" if out else
                   f"inconclusive: the simulator sent {late} packets late (it used "
                   f"{pct(r.get('sim_cpu_core_share'))} of its core, which was {pct(r.get('sim_core_busy'))} busy)")
    return out
