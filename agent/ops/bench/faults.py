"""`callagent bench faults`: every fault the agent must survive, on the simulator with the real processes.

Each scenario starts a fresh worker and controller (the fork and the database reached through proxies that
can reset, freeze or refuse), places a few calls, injects its fault once the first caller has spoken (the
moment the caller starts waiting for the agent), and reads back from the callers' timelines and PostgreSQL:
calls placed, served, transferred, calls that heard more than 3 s of silence, the longest silence, how long
after the fault the transfer came, and whether every call's record is present and closed (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.ops.bench import faultkit
from agent.ops.bench import faultrun as fr
from agent.ops.bench.faultkit import FakeLlm, longest_silence

log = logging.getLogger(__name__)

RESULTS_DIR = "bench/results"
SILENCE_TARGET_S = 3.0
TRANSFER_TARGET_S = 8.0


@dataclasses.dataclass
class Scenario:
    name: str
    what: str
    fault: Callable[[fr.Run], None] | None = None
    calls: int = 3
    unrecoverable: bool = False  # the calls cannot go on: each must be transferred within 8 s of the fault
    trigger: str = "first_utterance"  # or "start": inject before the calls
    audio: bool = False  # speak recorded audio (real ASR path) instead of injected text
    asr_delay_s: float = 0.05
    llm: str | None = None  # FakeLlm mode: the dialog runs on an LLM that hangs or errors
    sim: str = "normal"  # normal | no_playback_events | files_missing | dtmf_flood
    poison_first: bool = False
    after: Callable[[fr.Run], None] | None = None  # undoes the fault (resume a stopped process)


def _kill_worker(sig: int) -> Callable[[fr.Run], None]:
    return lambda run: os.kill(run.worker.popen.pid, sig)


def _db_outage(mode: str, seconds: float) -> Callable[[fr.Run], None]:
    def inject(run: fr.Run) -> None:
        run.db_proxy.set_mode(mode)
        if mode == "refuse":
            run.db_proxy.reset()
        else:
            run.db_proxy.freeze()

        def restore() -> None:  # the server is back (restarted, or resumed with its connections)
            run.db_proxy.set_mode("pass")
            run.db_proxy.thaw()

        timer = threading.Timer(seconds, restore)
        timer.daemon = True
        timer.start()
        run.timers.append(timer)
    return inject


def _kill_controller(run: fr.Run) -> None:
    os.kill(run.controller.popen.pid, signal.SIGKILL)
    run.controller.popen.wait()
    run.restart_controller_later = True


def scenarios(quick: bool) -> list[Scenario]:
    outage_s = 10.0 if quick else 45.0
    return [
        Scenario("worker_sigkill", "worker killed (SIGKILL) mid-call", _kill_worker(signal.SIGKILL),
                 unrecoverable=True),
        Scenario("worker_sigstop", "worker stopped (SIGSTOP), sockets open", _kill_worker(signal.SIGSTOP),
                 unrecoverable=True, after=_kill_worker(signal.SIGCONT)),
        Scenario("fork_reset", "fork connections reset (TCP RST)", lambda run: run.fork_proxy.reset(),
                 unrecoverable=True),
        Scenario("fork_half_open", "fork half-open: nothing passes, nothing closes",
                 lambda run: run.fork_proxy.freeze(), unrecoverable=True),
        Scenario("asr_slow", "ASR slower than its 10 s timeout", audio=True, asr_delay_s=12.0, calls=2),
        Scenario("llm_hang", "LLM that never answers", llm="hang", calls=2),
        Scenario("llm_error", "LLM that answers HTTP 500", llm="error", calls=2),
        Scenario("pg_stopped", f"PostgreSQL stopped {outage_s:.0f} s", _db_outage("refuse", outage_s),
                 trigger="start"),
        Scenario("pg_hung", "PostgreSQL hung (accepts, never answers) 20 s", _db_outage("hang", 20.0),
                 trigger="start"),
        Scenario("poison_record", "a record with a NUL byte, then 5 more calls", poison_first=True, calls=6),
        Scenario("missing_playback", "no file can be played (FILE NOT FOUND, no PLAYBACK events)",
                 sim="files_missing", unrecoverable=True, trigger="start"),
        Scenario("no_playback_events", "a peer that never sends PLAYBACK events", sim="no_playback_events",
                 calls=2, trigger="start"),
        Scenario("controller_kill9", "controller killed (SIGKILL) with live calls", _kill_controller,
                 unrecoverable=True),
        Scenario("dtmf_flood", "one caller sends 540 DTMF digits ~2 ms apart", sim="dtmf_flood", calls=2,
                 trigger="start"),
        Scenario("frame_flood", "a client floods the worker with 1 MiB frames", fr.frame_flood, trigger="start"),
        Scenario("idle_1000", "1,000 idle connections to the worker", fr.idle_connections, trigger="start"),
    ]


QUICK = ("worker_sigkill", "fork_half_open", "poison_record")


def measure(s: Scenario, run: fr.Run, logs: list, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    silences = [longest_silence(lg) for lg in logs]
    worst = max(logs, key=longest_silence, default=None)
    worst_at = None
    if worst is not None and worst.answered_at is not None:
        start, secs = max(faultkit.silences(worst), key=lambda x: x[1], default=(worst.answered_at, 0.0))
        worst_at = {"call": worst.name, "from_answer_s": round(start - worst.answered_at, 1), "s": round(secs, 1),
                    "fault_from_answer_s": None if run.fault_at is None else round(run.fault_at - worst.answered_at, 1)}
    transferred = [lg for lg in logs if lg.transfer is not None]
    served = [lg for lg in logs if lg.transfer is None and not lg.errors and lg.ended_by == "caller"
              and any(u.t_last_voiced for u in lg.utterances)]
    fault_at = run.fault_at
    # From the fault, or from the answer for a call that started after it (a switch fault present all along).
    after_fault = [lg.transfer.t - max(fault_at, lg.answered_at or fault_at) for lg in transferred
                   if fault_at is not None and lg.transfer.t >= fault_at]
    complete = [lg for lg in logs if (r := records.get(lg.uuid)) and r["ended_at"] is not None and r["end_reason"]]
    reasons = sorted({str(records[lg.uuid]["end_reason"]) for lg in logs if lg.uuid in records})
    longest = max(silences, default=0.0)
    out: dict[str, Any] = {
        "scenario": s.name, "what": s.what, "placed": len(logs), "served": len(served),
        "transferred": len(transferred), "in_silence": sum(x > SILENCE_TARGET_S for x in silences),
        "longest_silence_s": round(longest, 2),
        "transfer_after_fault_s": round(max(after_fault), 2) if after_fault else None,
        "records_complete": len(complete), "end_reasons": reasons,
        "silence_ok": longest <= SILENCE_TARGET_S,
        "transfer_ok": (not s.unrecoverable) or (len(after_fault) == len(logs) and bool(after_fault)
                                                 and max(after_fault) <= TRANSFER_TARGET_S),
        "records_ok": len(complete) == len(logs),
        "errors": sorted({e for lg in logs for e in lg.errors})[:5],
        "worst_silence": worst_at,
        "dtmf_rows": sum(int(r.get("dtmf_rows", 0)) for r in records.values()),
        **run.extra,
    }
    return out


def run_scenario(cfg: Config, s: Scenario, work: Path, bench: fr.FaultDatabase) -> dict[str, Any]:
    llm = FakeLlm(s.llm) if s.llm else None
    run = fr.Run(cfg, work / s.name, bench, asr_delay_s=s.asr_delay_s, llm_base=llm.base if llm else None)
    started = time.monotonic()
    try:
        scripts = fr.scripts(s.name, s.calls, audio_clip=run.clip if s.audio else None,
                             poison_first=s.poison_first, dtmf_flood=s.sim == "dtmf_flood")
        logs = run.place(scripts, s.fault, trigger=s.trigger, sim_mode=s.sim)
        if s.after is not None:
            with contextlib.suppress(OSError):
                s.after(run)
    finally:
        run.stop()
        if llm is not None:
            run.extra["llm_requests"] = llm.requests
            llm.close()
    result = measure(s, run, logs, bench.records([lg.uuid for lg in logs]))
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def run(cfg: Config, work: Path, *, quick: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    chosen = [s for s in scenarios(quick) if (only and s.name in only) or (not only and (not quick or
                                                                                            s.name in QUICK))]
    bench = fr.FaultDatabase(cfg)
    results = []
    try:
        for s in chosen:
            log.info("fault scenario %s …", s.name)
            try:
                results.append(run_scenario(cfg, s, work, bench))
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                log.exception("fault scenario %s failed to run", s.name)
                last = (str(exc).strip().splitlines() or [""])[-1][:200]  # one line: it goes into a table cell
                results.append({"scenario": s.name, "what": s.what, "error": f"{type(exc).__name__}: {last}"})
    finally:
        bench.close()
    return {"scenarios": results, "silence_target_s": SILENCE_TARGET_S, "transfer_target_s": TRANSFER_TARGET_S}


def _cell(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _notes(r: dict[str, Any]) -> str:
    out = []
    w = r.get("worst_silence")
    if w and w["s"] > SILENCE_TARGET_S:
        out.append(f"worst: {w['s']} s from {w['from_answer_s']} s after answer"
                   + (f" (fault at {w['fault_from_answer_s']} s)" if w["fault_from_answer_s"] is not None else ""))
    if r["scenario"] in ("frame_flood", "idle_1000"):
        out.append(f"worker peak {r.get('worker_rss_mib')} MiB, {r.get('worker_fds')} fds")
    if r["scenario"] == "dtmf_flood":
        out.append(f"{r.get('dtmf_rows')} DTMF rows stored")
    store = r.get("store") or {}
    if store.get("spooled") or store.get("quarantined"):
        out.append(f"store: {store.get('spooled', 0)} spooled, {store.get('quarantined', 0)} quarantined")
    if r.get("controller_active_at_stop"):
        out.append(f"{r['controller_active_at_stop']} calls still held by the controller at the end")
    return "; ".join(out)


def table_md(result: dict[str, Any]) -> str:
    head = ("| scenario | calls | served | transferred | in silence > 3 s | longest silence (s) | "
            "transfer after fault (s) | records complete | end reasons | misses | notes |")
    rows = [head, "|" + "---|" * 11]
    for r in result["scenarios"]:
        if "error" in r:
            rows.append(f"| {r['scenario']} | – | – | – | – | – | – | – | – | did not run | {r['error']} |")
            continue
        misses = [m for m, ok in (("silence", r["silence_ok"]), ("transfer", r["transfer_ok"]),
                                  ("records", r["records_ok"])) if not ok]
        rows.append(f"| {r['scenario']} | {r['placed']} | {r['served']} | {r['transferred']} | {r['in_silence']} | "
                    f"{_cell(r['longest_silence_s'])} | {_cell(r['transfer_after_fault_s'])} | "
                    f"{r['records_complete']}/{r['placed']} | {', '.join(r['end_reasons'])} | "
                    f"{', '.join(misses) or 'none'} | {_notes(r)} |")
    return "\n".join(rows)


def main(cfg: Config, args: argparse.Namespace) -> int:
    """Runs the suite; writes JSON and the Markdown table under bench/results/ and prints the table."""
    from agent.ops.bench import report

    work = Path(tempfile.mkdtemp(prefix="callagent-faults-"))
    started = time.monotonic()
    try:
        result = run(cfg, work, quick=args.quick, only=getattr(args, "only", None))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = cfg.path(RESULTS_DIR)
    report.write_json(out_dir / f"faults-{stamp}.json", {
        "bench": "faults", "date": datetime.now().isoformat(timespec="seconds"), "machine": report.machine(),
        "code": report.code_version(), "quick": args.quick, "elapsed_s": round(elapsed, 1), "result": result})
    md = (f"## Fault suite {datetime.now():%Y-%m-%d %H:%M} ({elapsed:.0f} s, code {report.code_version()})\n\n"
          + table_md(result) + "\n")
    (out_dir / f"faults-{stamp}.md").write_text(md, encoding="utf-8")
    print(md + f"\nJSON and Markdown: {out_dir}/faults-{stamp}.*", flush=True)
    return 0 if all("error" not in r for r in result["scenarios"]) else 1
