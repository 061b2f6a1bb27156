"""Benchmark output: the machine it ran on, JSON under bench/results/, and short Markdown tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    """Cores, CPU model (/proc/cpuinfo), memory, OS and Python: what a number is only valid for."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": "present" if Path("/dev/nvidia0").exists() else "none", "os": platform.platform(),
            "python": platform.python_version()}


def code_version() -> str:
    """The commit measured (`-dirty` when the working tree had changes), or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")


def num(value: float | None, digits: int | None = None) -> str:
    """Milliseconds and the like: whole numbers from 10 up, one decimal below; '—' when not measured."""
    if value is None:
        return "—"
    if digits is None:
        digits = 0 if abs(value) >= 10 else 1
    return f"{value:.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_md(m: dict[str, Any]) -> str:
    return (f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB RAM, GPU: {m['gpu']}; "
            f"{m['os']}, Python {m['python']}")


def latency_md(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"### Latency\n\nFAILED: {r['error']}"
    e = r["engines"]
    head = (f"### Latency — {r['calls']} calls at real-time pace, one every {r['stagger_s']:g} s\n\n"
            f"Engines: ASR {e['asr']}, TTS {e['tts']}, dialog {e['dialog']}. Caller audio: {r['caller_audio']}; "
            "through the simulated 8 kHz μ-law channel.\n\n")
    rows = [[p["label"], p["n"], num(p["p50"]), num(p["p95"]), num(p["max"]), p["source"]]
            for p in r["parts"].values()]
    foot = (f"\n\nUtterances: {r['utterances']}; without a reply: {r['unanswered_utterances']}; "
            f"barge-ins that cut nothing: {r['barge_ins_without_break']}; call script errors: {len(r['call_errors'])}. "
            f"CPU during the run, in shares of one core: agent {pct(r.get('agent_cpu_core_share'), 0)}, "
            f"other processes (PostgreSQL included) {pct(r.get('other_cpu_core_share'), 0)}.")
    return head + table(["Part", "n", "p50 ms", "p95 ms", "max ms", "From"], rows) + foot


def load_md(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"### Load\n\nFAILED: {r['error']}"
    e = r["engines"]
    where = (f"agent (controller + worker) pinned to CPU core {r['agent_core']}, simulator on core {r['sim_core']}"
             if r["agent_core"] is not None else "no CPU pinning (fewer than 2 cores)")
    head = (f"### Load — {r['turns_per_call']} caller turns per call, real-time pace; {where}\n\n"
            f"Engines: ASR {e['asr']} — the agent's own cost, not a recogniser's; TTS {e['tts']}; "
            f"dialog {e['dialog']}.\n\n")
    res, timing = [], []
    for lv in r["levels"]:
        cpm, mem = lv["cpu_s_per_call_minute"], lv["mem_per_call_kib"]
        res.append([lv["calls"], num(lv["call_minutes"], 1), num(cpm["controller"], 3), num(cpm["tts_subprocesses"], 3),
                    num(cpm["worker"], 3), num(cpm["agent_total"], 3), pct(lv["agent_cpu_core_share"], 0),
                    pct(lv.get("other_cpu_core_share"), 0), num(mem["controller"], 0), num(mem["worker"], 0)])
        lateness = lv.get("frame_lateness_ms") or {}
        late = lv["late_frames_at_worker"]
        timing.append([lv["calls"], lv["sim"]["packets_sent"], lv["dropped_frames"], "—" if late is None else late,
                       num(lateness.get("p99")), pct(lv.get("worker_late_share"), 2), lv["sim"]["packets_late"],
                       f"{pct(lv.get('sim_cpu_core_share'), 0)} / {pct(lv.get('sim_core_busy'), 0)}",
                       num(lv["overhead_ms"]["p50"]),
                       num(lv["overhead_ms"]["p99"]), num(lv["v2v_ms"]["p50"]),
                       "yes" if lv["sustained"] else "no: " + "; ".join(lv["limits"])])
    return (head + table(["Calls", "Call-min", "Controller CPU s/call-min", "espeak-ng CPU s/call-min",
                          "Worker CPU s/call-min", "Agent CPU s/call-min", "Agent CPU (of one core)",
                          "Other processes' CPU", "Controller KiB/call", "Worker KiB/call"], res)
            + "\n\n" + table(["Calls", "Frames sent", "Dropped", "Late at worker", "Frame lateness p99 ms",
                              "Worker > 20 ms behind", "Late in simulator", "Simulator CPU / its core busy",
                              "Overhead p50 ms", "Overhead p99 ms", "V2V p50 ms", "Sustained"], timing)
            + "\n\n" + _load_verdict(r))


def _load_verdict(r: dict[str, Any]) -> str:
    best, failed = r["max_sustained_calls_one_core"], r["lowest_failed_level"]
    tol = f"{r['late_tolerance'] * 100:g} %"
    if best is None:
        line = "No level tested was sustained on one core"
    else:
        line = (f"Most calls one core sustained (no dropped frames, every turn answered, the worker more than "
                f"20 ms behind ≤ {tol} of the time): **{best}**")
        if failed and r.get("limited_by_simulator"):
            line += f" or more: at {failed} the simulator, on its own core, could not send audio on time"
        elif failed:
            line += f", not {failed}"
        else:
            line += " (the highest level tested)"
    est = r.get("cpu_bound_calls_one_core")
    if est:
        line += f". At that level's CPU cost one core's 60 s per minute would carry ≈ {est:.0f} calls (CPU only)"
    return line + "."


def asr_md(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"### ASR accuracy\n\nFAILED: {r['error']}"
    engines = table(["Engine", "Status", "Load s"],
                    [[e["engine"], e["status"], num(e.get("load_s"), 1)] for e in r["engines"]])
    totals = table(["Engine", "Language", "Condition", "Files", "Audio s", "Metric", "Error rate", "RTF",
                    "Hotword recall"],
                   [[t["engine"], t["language"], t["condition"], t["files"], num(t["audio_s"], 1), t["metric"],
                     pct(t["error_rate"]), num(t["rtf"], 3), _recall_cell(t)] for t in r["totals"]])
    return ("### ASR accuracy — CER (Korean, spaces ignored) / WER (English), as recorded and as telephone "
            "band (8 kHz G.711 μ-law, back to 16 kHz)\n\n" + engines + "\n\n" + totals + "\n\n"
            + per_file_md(r["files"]))


def _recall_cell(t: dict[str, Any]) -> str:
    if not t.get("hotwords"):
        return "—"
    return f"{pct(t['hotword_recall'])} ({t['hotword_hits']}/{t['hotwords']})"


def per_file_md(files: list[dict[str, Any]]) -> str:
    """One row per file and engine, both conditions side by side; n/a rows collapse to their reason."""
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for f in files:
        by_key.setdefault((f["engine"], f["file"]), {})[f["condition"]] = f
    rows = []
    for (engine, file), conds in by_key.items():
        first = next(iter(conds.values()))
        cells = []
        for cond in ("as given", "8 kHz μ-law"):
            f = conds.get(cond, {})
            cells.append(pct(f.get("error_rate")) if f.get("status") == "ok" else "—")
            cells.append(num(f.get("rtf"), 3) if f.get("status") == "ok" else "—")
        status = first["status"] if first["status"] != "ok" else ""
        rows.append([file, first["language"], num(first["duration_s"], 1), engine, first["metric"], *cells, status])
    return table(["File", "Lang", "s", "Engine", "Metric", "Rate as given", "RTF", "Rate 8 kHz μ-law", "RTF",
                  "Note"], rows)
