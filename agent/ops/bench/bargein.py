"""`callagent bench bargein`: barge-in as the caller hears it, through the real worker and controller processes.

Cases, each spoken into a reply after it has played for a while: a backchannel ("네"), a 200 ms cough-like
burst, echo of the agent's own voice at −12 dB (no caller speech at all), and a real interruption. For each
call the simulated channel tells: when the caller's voice began, when the controller paused (`uuid_fileman`)
and broke (`uuid_break`) the reply, whether it resumed, and the longest gap the caller heard inside the reply.
Targets (docs/benchmarks.md): false barge-ins resumed ≥ 95 % with ≤ 600 ms heard; real ones paused ≤ 150 ms
p50 and broken ≤ 600 ms p95 after onset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from agent.config import Config
from agent.ops.bench import calls as c
from agent.ops.bench.stack import AgentStack, BenchDatabase
from agent.ops.bench.stats import summary
from agent.sim import CallLog, CallScript, FreeSwitchSim

log = logging.getLogger(__name__)

CASES = ("backchannel", "cough", "echo", "real")
FALSE_CASES = ("backchannel", "cough", "echo")
DEFAULT_CALLS_PER_CASE = 5
QUICK_CALLS_PER_CASE = 2
AFTER_MS = 1500  # into the reply: the caller has heard some of it
STAGGER_S = 4.0


def cough_wav(out: Path, rate: int = 16000, ms: int = 200, seed: int = 7) -> Path:
    """A cough-like burst: band-limited noise with a fast attack and decay, loud enough for the VAD."""
    rng = np.random.default_rng(seed)
    n = rate * ms // 1000
    noise = rng.normal(0, 1, n)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same")  # a little low-passed, like a throat sound
    env = np.minimum(1.0, np.arange(n) / (0.01 * rate)) * np.exp(-np.arange(n) / (0.08 * rate))
    burst = 0.5 * noise * env / np.max(np.abs(noise))
    pad = np.zeros(rate // 5)
    soundfile.write(out, np.concatenate([pad, burst, pad]).astype(np.float32), rate, subtype="PCM_16")
    return out


def script(case: str, i: int, audio: dict[str, Path]) -> CallScript:
    # The question is injected (its words are not under test); every barge-in is audio only, so the
    # configured recogniser hears "네" the way it would on a call (Vosk on the phone band often writes 례).
    steps: list[Any] = [{"wait_idle": {}}, {"say_text": "반품 정책이 어떻게 되나요?"}]
    if case in audio:
        steps.append({"barge_in": {"path": str(audio[case]), "after_ms": AFTER_MS}})
    else:
        steps.append({"wait_playback": {}})
    steps += [{"wait_idle": {"settle_ms": 800, "timeout_s": 60}}, "hangup"]
    echo = {"delay_ms": 120, "gain_db": -12} if case == "echo" else None
    return CallScript(name=f"{case}-{i}", variables={"callagent_industry": "ecommerce"}, echo=echo, steps=steps)


def _commands_after(log_: CallLog, prefix: str, t0: float) -> list[float]:
    return [cmd.t for cmd in log_.commands if cmd.line.startswith(f"api {prefix}") and cmd.t >= t0]


def measure(case: str, log_: CallLog) -> dict[str, Any]:
    """One call's outcome from what the simulated channel saw."""
    replies = [h for h in log_.heard if h.headers.get("utt_id", "").startswith("r")]
    barge = next((u for u in log_.utterances if u.barge_in), None)
    onset = barge.t_first_voiced if barge is not None and barge.t_first_voiced is not None else None
    t0 = onset if onset is not None else (replies[0].t_start if replies else log_.t_start)
    pauses = _commands_after(log_, "uuid_fileman", t0)
    breaks = _commands_after(log_, "uuid_break", t0)
    gaps = [g for h in replies for g in h.gaps()]
    return {
        "case": case,
        "errors": log_.errors,
        "broken": bool(breaks),
        "paused": bool(pauses),
        "resumed": len(pauses) >= 2 and not breaks,
        "pause_ms": (pauses[0] - onset) * 1000 if pauses and onset is not None else None,
        "break_ms": (breaks[0] - onset) * 1000 if breaks and onset is not None else None,
        "longest_gap_ms": max(gaps, default=0.0) * 1000,
    }


def run(cfg: Config, work_dir: Path, *, calls: int | None = None, quick: bool = False) -> dict[str, Any]:
    per_case = calls or (QUICK_CALLS_PER_CASE if quick else DEFAULT_CALLS_PER_CASE)
    work = work_dir / "bargein"
    work.mkdir(parents=True, exist_ok=True)
    audio = {"cough": cough_wav(work / "cough.wav"),
             "backchannel": c.render_speech("네", work / "ne.wav"),
             "real": c.render_speech(c.BARGE_TEXT, work / "real.wav")}
    scripts = [script(case, i, audio) for case in CASES for i in range(per_case)]
    bench_db = BenchDatabase(cfg)
    try:
        stack = AgentStack(cfg, work, bench_db.dsn, asr_engine=cfg.worker.asr_engine,
                           asr_options=cfg.worker.asr_options.get(cfg.worker.asr_engine, {}),
                           allow_injection=True, max_calls=len(scripts))
        try:
            sim = FreeSwitchSim(stack.addr, speed=1.0, narrowband=True, temp_dir=work / "sim")
            with c.quiet_gc():
                logs = sim.run_calls(scripts, stagger_s=STAGGER_S)
        finally:
            stack.stop()
    finally:
        bench_db.drop()
    rows = [measure(s.name.split("-")[0], lg) for s, lg in zip(scripts, logs, strict=True)]
    return analyse(rows)


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": rows, "cases": {}}
    for case in CASES:
        mine = [r for r in rows if r["case"] == case and not r["errors"]]
        entry: dict[str, Any] = {"calls": len(mine)}
        if case in FALSE_CASES:
            kept = [r for r in mine if not r["broken"]]
            entry["kept_share"] = len(kept) / len(mine) if mine else None
            entry["resumed_after_pause"] = sum(r["resumed"] for r in mine)
            entry["longest_gap_ms"] = max((r["longest_gap_ms"] for r in mine), default=None)
        else:
            entry["broken_share"] = sum(r["broken"] for r in mine) / len(mine) if mine else None
            entry["pause_ms"] = summary([r["pause_ms"] for r in mine if r["pause_ms"] is not None])
            entry["break_ms"] = summary([r["break_ms"] for r in mine if r["break_ms"] is not None])
        out["cases"][case] = entry
    return out


def bargein_md(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"### Barge-in\n\nfailed: {result['error']}"
    lines = ["### Barge-in (what the caller heard)", "",
             "| case | calls | reply kept (no break) | resumed after a pause | longest gap heard | "
             "pause after onset p50/p95 | break after onset p50/p95 |", "|---|---|---|---|---|---|---|"]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.0f} %"

    def ms(s: dict[str, Any] | None) -> str:
        return "–" if not s or not s.get("n") else f"{s['p50']:.0f} / {s['p95']:.0f} ms"

    for case, e in result["cases"].items():
        if case in FALSE_CASES:
            gap = e.get("longest_gap_ms")
            lines.append(f"| {case} | {e['calls']} | {pct(e.get('kept_share'))} | {e.get('resumed_after_pause')} | "
                         f"{'–' if gap is None else f'{gap:.0f} ms'} | | |")
        else:
            lines.append(f"| {case} | {e['calls']} | broken {pct(e.get('broken_share'))} | | | "
                         f"{ms(e.get('pause_ms'))} | {ms(e.get('break_ms'))} |")
    return "\n".join(lines)
