"""`callagent demo` end to end on a fresh data folder: the shipped scenarios, the stored call, the JSON."""

from __future__ import annotations

import json

import pytest

from agent.config import parse_config
from agent.ops.cli import main as cli_main
from agent.ops.demo import SCENARIOS, run_demo


@pytest.fixture
def cfg(tmp_path):
    return parse_config({}, base_dir=str(tmp_path))


def test_demo_json_looks_up_an_order_answers_faq_and_escalates(cfg, capsys):
    assert run_demo(cfg, scenario=None, as_json=True, speed=4.0) == 0
    out = json.loads(capsys.readouterr().out)
    agent = [t for t in out["turns"] if t["speaker"] == "agent" and t["source"] == "policy"]
    assert len(agent) >= 2
    assert "123456" in agent[0]["text"] and "CJ대한통운" in agent[0]["text"]  # from the demo CRM
    assert "7일" in agent[1]["text"]  # the return policy from the knowledge base
    assert out["ended_by"] == "transferred" and out["escalation_reason"] == "caller_requested"
    assert all(t["latency_ms"]["first_audio_ms"] > 0 for t in agent)
    assert all(v is not None and v > 0 for v in out["voice_to_voice_ms"])
    # The operator view shows the same call with its turns.
    assert cli_main(["--config", _write_cfg(cfg), "calls", "--last", "1", "--json"]) == 0
    (stored,) = json.loads(capsys.readouterr().out)
    assert stored["call_id"] == out["call_id"] and len(stored["turns"]) == len(out["turns"])


def test_demo_with_real_korean_recordings_runs_them_through_vosk(cfg, capsys, speech_dir):
    assert run_demo(cfg, scenario=str(SCENARIOS / "speech_ko.yaml"), as_json=True, speed=2.0) == 0
    out = json.loads(capsys.readouterr().out)
    asr_turns = [t for t in out["turns"] if t["speaker"] == "caller" and t["source"] == "asr"]
    assert len(asr_turns) == 2 and all(t["text"] for t in asr_turns)
    assert out["ended_by"] == "transferred"


def _write_cfg(cfg) -> str:
    path = f"{cfg.base_dir}/callagent.yaml"
    with open(path, "w", encoding="utf-8") as f:
        f.write("store: {embedded_dir: var/pg}\n")
    return path
