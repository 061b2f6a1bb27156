"""`callagent bench latency`: simulated calls at real-time pace through the real controller and worker
(configured engines), each part of each turn from the turn rows, and what the caller heard from the CallLog.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.ops.bench import calls as c
from agent.ops.bench.stack import AgentStack, BenchDatabase, busy_cpu_s, other_cpu_share
from agent.ops.bench.stats import summary
from agent.sim import FreeSwitchSim

log = logging.getLogger(__name__)

DEFAULT_CALLS = 8
QUICK_CALLS = 3
STAGGER_S = 6.0          # a new call every 6 s: a few overlap, as on a quiet line, without queueing on one CPU

# (key, label, where it comes from) in table order.
PARTS = (
    ("eos_wait_ms", "End of turn: silence until decided", "turn rows"),
    ("eot_sentence_end_ms", "  … turns ended by the sentence ending", "turn rows (eot)"),
    ("eot_audio_model_ms", "  … turns ended by the audio model", "turn rows (eot)"),
    ("eot_silence_ms", "  … turns ended by the fallback silence", "turn rows (eot)"),
    ("asr_ms", "ASR final transcript", "turn rows"),
    ("asr_wait_ms", "ASR wait after end of speech", "turn rows"),
    ("dialog_ms", "Dialog: transcript → first text", "turn rows"),
    ("tts_ms", "TTS: first text → first chunk", "turn rows"),
    ("overhead_ms", "Controller overhead (engines excluded)", "turn rows"),
    ("first_audio_ms", "Transcript → PLAYBACK_START", "turn rows"),
    ("preemptive_lead_ms", "Preemptive lead: turn_preview → release (end of turn or final)", "turn rows"),
    ("residual_ms", "Audio/event paths between processes", "v2v − parts"),
    ("v2v_ms", "Voice-to-voice", "simulated channel"),
    ("greeting_ms", "Answer → greeting PLAYBACK_START", "simulated channel"),
    ("barge_in_ms", "Barge-in: speech onset → uuid_break", "simulated channel"),
)


def run(cfg: Config, work_dir: Path, speech_dir: Path, *, calls: int | None = None,
        quick: bool = False) -> dict[str, Any]:
    n = calls or (QUICK_CALLS if quick else DEFAULT_CALLS)
    clips = c.korean_clips(speech_dir)
    (work_dir / "latency").mkdir(parents=True, exist_ok=True)
    # The barge-in is a real recording too (the call's third clip, lead-in silenced): espeak-ng's Korean read
    # through 8 kHz μ-law is not speech Vosk can transcribe, so its ending could never be read.
    barges = [c.gated_clip(clips[(2 * i + 2) % len(clips)].path, work_dir / "latency" / f"barge-{i}.wav")
              for i in range(n)] if clips else []
    scripts = [c.latency_script(i, clips, barges[i] if barges else None) for i in range(n)]
    bench_db = BenchDatabase(cfg)
    try:
        stack = AgentStack(cfg, work_dir / "latency", bench_db.dsn, asr_engine=cfg.worker.asr_engine,
                           asr_options=cfg.worker.asr_options.get(cfg.worker.asr_engine, {}),
                           allow_injection=not clips, max_calls=n)
        try:
            sim = FreeSwitchSim(stack.addr, speed=1.0, narrowband=True, temp_dir=work_dir / "latency" / "sim")
            before, machine_before = stack.snapshot(), busy_cpu_s()
            started = time.monotonic()
            with c.quiet_gc():
                logs = sim.run_calls(scripts, stagger_s=STAGGER_S)
            wall_s = time.monotonic() - started
            after, machine_after = stack.snapshot(), busy_cpu_s()
        finally:
            child_stats = stack.stop()
        rows = bench_db.turns()
    finally:
        bench_db.drop()
    result = analyse(logs, rows, child_stats, stack, clips=bool(clips), wall_s=wall_s, calls=n)
    agent_s = sum(after[k].cpu_s + after[k].children_cpu_s - before[k].cpu_s - before[k].children_cpu_s
                  for k in after)
    result["agent_cpu_core_share"] = agent_s / wall_s
    result["other_cpu_core_share"] = other_cpu_share(machine_before, machine_after, agent_s, wall_s)
    return result


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.get("detail") or {}
    return json.loads(detail) if isinstance(detail, str) else detail


def analyse(logs: list, rows: list[dict[str, Any]], child_stats: dict[str, Any], stack: AgentStack, *,
            clips: bool, wall_s: float, calls: int) -> dict[str, Any]:
    replies = c.agent_turns(rows)
    for r in replies:
        r["asr_wait_ms"] = c.asr_wait_ms(r, rows)
    values: dict[str, list[float | None]] = {k: [r.get(k) for r in replies] for k in
                                             ("eos_wait_ms", "asr_ms", "asr_wait_ms", "dialog_ms", "tts_ms",
                                              "first_audio_ms")}
    values["overhead_ms"] = [c.overhead_ms(r) for r in replies]
    eots = [(_detail(r).get("eot") or {}, r.get("eos_wait_ms")) for r in replies]
    for reason in ("sentence_end", "audio_model", "silence"):
        values[f"eot_{reason}_ms"] = [wait for eot, wait in eots if eot.get("reason") == reason]
    values["preemptive_lead_ms"] = [_detail(r).get("preemptive_lead_ms") for r in replies]
    values["v2v_ms"], values["greeting_ms"], values["barge_in_ms"], values["residual_ms"] = [], [], [], []
    for log in logs:
        values["v2v_ms"] += c.voice_to_voice_ms(log)
        values["greeting_ms"].append(c.greeting_ms(log))
        values["barge_in_ms"] += c.barge_in_ms(log)
        values["residual_ms"] += c.reply_residuals_ms(log, c.agent_turns(rows, log.uuid))
    # Parts a worker or controller does not report (no asr_wait_ms, no eot, no preemption) are left out.
    parts = {key: {"label": label, "source": source, **summary(values[key])} for key, label, source in PARTS
             if key in ("eos_wait_ms", "asr_ms", "dialog_ms", "tts_ms", "overhead_ms", "first_audio_ms",
                        "residual_ms", "v2v_ms", "greeting_ms", "barge_in_ms")
             or any(v is not None for v in values[key])}
    worker_ready, controller_ready = stack.worker.ready, stack.controller.ready
    return {
        "calls": calls, "stagger_s": STAGGER_S, "speed": 1.0, "wall_s": round(wall_s, 1),
        "caller_audio": "turns and barge-in: real Korean recordings (the barge-in's lead-in silenced; all "
        "recognised by the ASR engine)" if clips else "espeak-ng say_text (transcript injected: ASR skipped)",
        "engines": {"asr": worker_ready.get("engine"), "tts": controller_ready.get("tts"),
                    "dialog": controller_ready.get("policy")},
        "parts": parts,
        "end_of_turn": {reason: sum(eot.get("reason") == reason for eot, _ in eots) / len(eots) if eots else None
                        for reason in ("sentence_end", "audio_model", "silence", "forced")},
        "utterances": sum(len(log.utterances) for log in logs),
        "unanswered_utterances": sum(1 for v in values["v2v_ms"] if v is None),
        "barge_ins_without_break": sum(1 for v in values["barge_in_ms"] if v is None),
        "call_errors": [e for log in logs for e in log.errors],
        "calls_detail": [{"name": log.name, "utterances": len(log.utterances), "ended_by": log.ended_by,
                          "errors": log.errors, "notes": log.notes} for log in logs],
        "raw": {k: v for k, v in values.items()},
        # Per reply: why its turn ended (reason, silence, the transcript's verdict, Smart Turn), to tell a
        # misread ending (sentence_end false) from a transcript that came too late (null).
        "eot": [eot for eot, _ in eots],
        "agent": child_stats,
    }
