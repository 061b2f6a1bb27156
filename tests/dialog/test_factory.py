"""create_policy: the scripted default, the LLM policy, db=None, and missing secrets."""

from __future__ import annotations

import pytest

from agent.config_reader import ConfigError
from agent.dialog.factory import create_policy
from agent.dialog.llm_policy import LlmPolicy
from agent.dialog.policy import CallInfo, Say
from agent.dialog.scripted import ScriptedPolicy
from agent.dialog.settings import parse_dialog_settings
from agent.store import kb as store
from agent.store.db import Database


def test_scripted_default_indexes_the_pack_kb(db: Database) -> None:
    policy = create_policy(parse_dialog_settings({"pack": "telecom"}), db)
    assert isinstance(policy, ScriptedPolicy) and policy.name == "scripted"
    assert store.count_chunks(db, "telecom") > 0
    conv = policy.open(CallInfo(call_id="f1"))
    said = [e.text for e in conv.respond("로밍은 어떻게 신청해요?", "asr") if isinstance(e, Say)]
    assert "출국 전" in " ".join(said)


def test_without_database() -> None:
    policy = create_policy(parse_dialog_settings({}), None)
    assert policy.crm is None and policy.kb is None


def test_llm_policy(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "k")
    settings = parse_dialog_settings({"policy": "llm", "llm": {"model": "openai/x", "api_base": "http://127.0.0.1:9/v1",
                                                              "api_key_env": "TEST_LLM_KEY"}})
    policy = create_policy(settings, db)
    assert isinstance(policy, LlmPolicy) and policy.llm.api_key == "k"


def test_missing_secret_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    settings = parse_dialog_settings({"policy": "llm", "llm": {"model": "gpt-4o-mini", "api_key_env": "NO_SUCH_KEY"}})
    with pytest.raises(ConfigError) as err:
        create_policy(settings, None)
    assert err.value.key == "dialog.llm.api_key_env"
    rest = parse_dialog_settings({"crm": {"kind": "rest", "base_url": "http://127.0.0.1:9", "auth_env": "NO_SUCH_KEY"}})
    with pytest.raises(ConfigError) as err:
        create_policy(rest, None)
    assert err.value.key == "dialog.crm.auth_env"
