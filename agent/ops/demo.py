"""`callagent demo`: the embedded PostgreSQL, the speech worker, the controller and the simulator, one call.

Everything is the real code path on loopback; only FreeSWITCH is simulated. Ports are ephemeral so a demo
never collides with a running controller.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from agent.call.controller import ControllerThread
from agent.config import Config
from agent.ops.report import LATENCY_FIELDS, format_call, latency_parts
from agent.ops.runtime import build_call_deps
from agent.sim import FreeSwitchSim, load_script
from agent.store.calls import list_calls
from agent.store.db import open_database
from agent.worker.server import WorkerThread

log = logging.getLogger(__name__)

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "demo_ecommerce.yaml"


def demo_config(cfg: Config) -> Config:
    """The user's config with what the demo needs: text injection on, an ephemeral worker port."""
    worker = dataclasses.replace(cfg.worker, allow_text_injection=True, listen=("127.0.0.1", 0))
    return dataclasses.replace(cfg, worker=worker)


def _voice_to_voice(sim_log: Any) -> list[float | None]:
    return [None if v is None else round(v * 1000.0, 1) for v in sim_log.response_latencies()]


def _summary(call: dict[str, Any], sim_log: Any) -> dict[str, Any]:
    turns = []
    for t in call["turns"]:
        turns.append({"speaker": t["speaker"], "text": t["text"], "source": t["source"],
                      "heard_text": t["heard_text"], "interrupted": t["interrupted"],
                      "latency_ms": latency_parts(t)})
    return {
        "call_id": call["call_id"],
        "turns": turns,
        "ended_by": call["end_reason"],
        "escalation_reason": call["escalation_reason"],
        "transfer_target": call["transfer_target"],
        "voice_to_voice_ms": _voice_to_voice(sim_log),
        "greeting_after_answer_ms": (
            round((sim_log.heard[0].t_start - sim_log.answered_at) * 1000.0, 1)
            if sim_log.heard and sim_log.answered_at else None),
        "simulator_errors": sim_log.errors,
    }


def run_demo(cfg: Config, *, scenario: str | None, as_json: bool, speed: float = 1.0) -> int:
    cfg = demo_config(cfg)
    script = load_script(scenario or DEFAULT_SCENARIO)
    db = open_database(cfg)
    worker = WorkerThread(cfg).start()
    controller_cfg = dataclasses.replace(cfg.controller, fork_url=f"ws://127.0.0.1:{worker.port}")
    cfg = dataclasses.replace(cfg, controller=controller_cfg)
    deps = build_call_deps(cfg, db)
    controller = ControllerThread(deps).start()
    try:
        sim = FreeSwitchSim(("127.0.0.1", controller.port), speed=speed)
        (sim_log,) = sim.run_calls([script])
        sim.cleanup()
    finally:
        controller.stop()
        worker.stop()
        deps.store.flush(15)
        deps.store.close()
    call = next((c for c in list_calls(db, 20) if c["call_id"] == sim_log.uuid), None)
    if call is None:
        print(f"callagent demo: call {sim_log.uuid} was not stored", flush=True)
        return 1
    result = _summary(call, sim_log)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(format_call(call))
        v2v = ", ".join("-" if v is None else f"{v:.0f}" for v in result["voice_to_voice_ms"])
        print(f"\nvoice-to-voice per caller turn (last speech frame → first agent audio), ms: {v2v}")
        print(f"greeting after answer: {result['greeting_after_answer_ms']} ms")
        print(f"latency parts per agent turn: {', '.join(k[:-3] for k in LATENCY_FIELDS)}")
        print(f"call id: {call['call_id']}  (see: callagent calls --last 1)")
        for error in sim_log.errors:
            print(f"simulator: {error}")
    agent_turns = [t for t in call["turns"] if t["speaker"] == "agent" and t["source"] == "policy"]
    return 0 if len(agent_turns) >= 2 and not sim_log.errors else 1
