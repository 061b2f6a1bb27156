"""callagent.yaml: the shipped example is valid, and every bad value stops start-up naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError, load_config, parse_config
from agent.ops.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_the_example_file_is_valid_and_matches_the_defaults():
    example = parse_config(yaml.safe_load((REPO / "callagent.example.yaml").read_text(encoding="utf-8")))
    defaults = parse_config({})
    assert example.controller == defaults.controller and example.worker.vad == defaults.worker.vad
    assert example.tts == defaults.tts


@pytest.mark.parametrize(("data", "key", "reason"), [
    ({"controller": {"fork_rate": 44100}}, "controller.fork_rate", "8000 or 16000"),
    ({"controller": {"listen": "8084"}}, "controller.listen", "host:port"),
    ({"controller": {"greeting": "  "}}, "controller.greeting", "silence"),
    ({"controller": {"fork_bug": "a b"}}, "controller.fork_bug", "letters"),
    ({"worker": {"vad": {"agressiveness": 2}}}, "worker.vad.agressiveness", "unknown key"),
    ({"worker": {"vad": {"aggressiveness": 5}}}, "worker.vad.aggressiveness", "<= 3"),
    ({"worker": {"vad": {"end_silence_ms": 810}}}, "worker.vad.end_silence_ms", "multiple of 20"),
    ({"worker": {"vad": {"speculative_ms": 900}}}, "worker.vad.speculative_ms", "below end_silence_ms"),
    ({"tts": {"worker_url": "gpu-host:8091"}}, "tts.worker_url", "http"),
    ({"store": {"dsn": "mysql://x"}}, "store.dsn", "PostgreSQL"),
    ({"dialog": {"policy": "magic"}}, "dialog.policy", "scripted, llm"),
])
def test_bad_values_name_the_key_and_the_reason(data, key, reason):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert err.value.key == key and reason in err.value.reason


def test_dsn_comes_from_the_environment_first(monkeypatch):
    monkeypatch.setenv("CALLAGENT_DB_DSN", "postgresql://db.internal/callagent")
    assert parse_config({"store": {"dsn": "postgresql://other/x"}}).store.dsn == "postgresql://db.internal/callagent"


def test_cli_refuses_to_start_with_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "callagent.yaml"
    bad.write_text("controller:\n  max_calls: 0\n", encoding="utf-8")
    assert cli_main(["--config", str(bad), "calls"]) == 2
    assert "config key 'controller.max_calls': must be >= 1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
