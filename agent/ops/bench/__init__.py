"""`callagent bench latency|load|asr|turns|bargein|all`: measured numbers for this machine, as JSON under
bench/results/ and Markdown tables on stdout (docs/benchmarks.md explains each number).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import Config

log = logging.getLogger(__name__)

RESULTS_DIR = "bench/results"
PARTS = ("latency", "load", "asr", "turns", "bargein")


def _run_part(part: str, cfg: Config, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from agent.sim.scenario import speech_dir

    # Imported per part: the ASR bench needs no simulator, the call benches no recogniser in this process.
    if part == "latency":
        from agent.ops.bench import latency

        return latency.run(cfg, work, speech_dir(), calls=args.calls, quick=args.quick)
    if part == "load":
        from agent.ops.bench import load

        return load.run(cfg, work, calls=args.calls, quick=args.quick, minutes=getattr(args, "minutes", None),
                        keep_db=not getattr(args, "drop_db", False))
    if part == "turns":
        from agent.ops.bench import turns

        return turns.run(cfg, speech_dir(), quick=args.quick)
    if part == "bargein":
        from agent.ops.bench import bargein

        return bargein.run(cfg, work, calls=args.calls, quick=args.quick)
    from agent.ops.bench import asr

    return asr.run(cfg, speech_dir(), quick=args.quick)


def _renderer(part: str, result: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    from agent.ops.bench import bargein, report, soak, turns

    if part == "load" and result.get("soak"):
        return soak.soak_md
    return {"latency": report.latency_md, "load": report.load_md, "asr": report.asr_md,
            "turns": turns.turns_md, "bargein": bargein.bargein_md}[part]


def main(cfg: Config, args: argparse.Namespace) -> int:
    """Runs the chosen benchmarks in order; a part that fails is reported and the others still run."""
    from agent.ops.bench import report

    parts = PARTS if args.what == "all" else (args.what,)
    out_dir = cfg.path(RESULTS_DIR)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    machine = report.machine()
    code = report.code_version()
    command = "callagent " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="callagent-bench-"))
    sections: list[str] = []
    status = 0
    started = time.monotonic()
    try:
        for part in parts:
            t0 = time.monotonic()
            try:
                result = _run_part(part, cfg, args, work)
            except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others' numbers
                log.exception("%s benchmark failed", part)
                result = {"error": f"{type(exc).__name__}: {exc}"}
                status = 1
            elapsed = time.monotonic() - t0
            path = out_dir / f"{part}-{stamp}.json"
            report.write_json(path, {"bench": part, "date": datetime.now().isoformat(timespec="seconds"),
                                     "machine": machine, "code": code, "command": command, "quick": args.quick,
                                     "elapsed_s": round(elapsed, 1), "result": result})
            section = _renderer(part, result)(result) + f"\n\n_{part}: {elapsed:.0f} s; JSON: {path}_"
            print(section + "\n", flush=True)
            sections.append(section)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    header = (f"## Benchmarks {datetime.now():%Y-%m-%d}\n\n{report.machine_md(machine)}\n\n"
              f"Command: `{command}` — {total:.0f} s in all. Code: {code}.\n")
    md_path = out_dir / f"{args.what}-{stamp}.md"
    md_path.write_text(header + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"{report.machine_md(machine)}\n{command}: {total:.0f} s in all; tables in {md_path}", flush=True)
    return status
