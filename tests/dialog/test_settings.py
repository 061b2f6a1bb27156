"""The dialog: block: defaults, a full example, and bad values naming their key."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, parse_config
from agent.dialog.settings import DialogSettings, parse_dialog_settings


def test_defaults() -> None:
    s = parse_dialog_settings({})
    assert s == DialogSettings()
    assert s.policy == "scripted" and s.pack == "ecommerce"
    assert s.escalation.max_call_s == 900 and s.escalation.sentiment_threshold == -0.7
    assert s.escalation.repeat_limit == 3 and s.filler_after_s == 1.0
    assert s.crm.kind == "embedded" and s.kb.embedding_model is None


def test_full_block() -> None:
    s = parse_dialog_settings({
        "policy": "llm", "pack": "banking", "filler_after_s": 0.5,
        "llm": {"model": "openai/Qwen2.5-7B-Instruct", "api_base": "http://127.0.0.1:8000/v1",
                "api_key_env": "VLLM_KEY", "timeout_s": 4, "temperature": 0.2, "max_tokens": 200},
        "crm": {"kind": "rest", "base_url": "https://crm.example.com/api", "auth_env": "CRM_TOKEN",
                "timeout_s": 2},
        "kb": {"embedding_model": "openai/bge-m3", "api_base": "http://127.0.0.1:8001/v1"},
        "escalation": {"max_call_s": 600, "sentiment_threshold": -0.5, "repeat_limit": 2},
    })
    assert s.llm.model.startswith("openai/") and s.llm.timeout_s == 4.0
    assert s.crm.kind == "rest" and s.crm.auth_env == "CRM_TOKEN"
    assert s.kb.embedding_model == "openai/bge-m3"
    assert s.escalation.repeat_limit == 2


@pytest.mark.parametrize(("data", "key"), [
    ({"policy": "magic"}, "dialog.policy"),
    ({"pack": "insurance"}, "dialog.pack"),
    ({"policy": "llm"}, "dialog.llm.model"),
    ({"llm": {"timeout_s": 0}}, "dialog.llm.timeout_s"),
    ({"llm": {"temperature": "hot"}}, "dialog.llm.temperature"),
    ({"llm": {"api_base": "ftp://x"}}, "dialog.llm.api_base"),
    ({"crm": {"kind": "rest"}}, "dialog.crm.base_url"),
    ({"crm": {"kind": "soap"}}, "dialog.crm.kind"),
    ({"crm": {"auth_header": "X: y"}}, "dialog.crm.auth_header"),
    ({"escalation": {"sentiment_threshold": 0.5}}, "dialog.escalation.sentiment_threshold"),
    ({"escalation": {"repeat_limit": 0}}, "dialog.escalation.repeat_limit"),
    ({"escalation": {"max_call_s": "15m"}}, "dialog.escalation.max_call_s"),
    ({"filler_after_s": -1}, "dialog.filler_after_s"),
    ({"kb": {"embeding_model": "x"}}, "dialog.kb.embeding_model"),
    ({"colour": "blue"}, "dialog.colour"),
])
def test_bad_values_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_dialog_settings(data)
    assert err.value.key == key


def test_config_file_validates_the_dialog_block() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"dialog": {"escalation": {"repeat_limit": "three"}}})
    assert err.value.key == "dialog.escalation.repeat_limit"
