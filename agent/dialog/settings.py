"""The `dialog:` block of callagent.yaml, validated at start: policy, pack, LLM, CRM, KB and escalation.

Secrets are never in the file: `api_key_env` / `auth_env` name environment variables read at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.config_reader import ConfigError, Section

POLICIES = ("scripted", "llm")
PACKS = ("ecommerce", "banking", "telecom")
CRM_KINDS = ("embedded", "rest", "none")


@dataclass(frozen=True)
class LlmSettings:
    # litellm model string: "openai/<name>" + api_base for vLLM, "gpt-4o-mini", "anthropic/claude-…".
    model: str = ""
    api_base: str | None = None
    api_key_env: str | None = None
    # One caller turn (first token to last tool round) must finish within this; else the scripted policy
    # answers that turn.
    timeout_s: float = 6.0
    temperature: float = 0.3
    max_tokens: int = 300
    max_tool_rounds: int = 3
    # Circuit breaker (agent/dialog/llm_guard.py): this many turns in a row lost to a down server (timeout,
    # connection error, 5xx) send every call's turns to the scripted policy, without waiting, until a
    # one-token probe sent every probe_every_s (each bounded by probe_timeout_s) answers.
    failures_to_open: int = 1
    probe_every_s: float = 5.0
    probe_timeout_s: float = 3.0


@dataclass(frozen=True)
class CrmSettings:
    kind: str = "embedded"
    base_url: str | None = None
    auth_header: str = "Authorization"
    auth_env: str | None = None
    timeout_s: float = 3.0


@dataclass(frozen=True)
class KbSettings:
    # None: trigram + keyword search only; set: chunks also get litellm embeddings searched with pgvector.
    embedding_model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    top_k: int = 3
    # Index the pack's shipped sample KB at start when it is not indexed yet.
    index_pack_kb: bool = True


@dataclass(frozen=True)
class EscalationSettings:
    max_call_s: float = 900.0
    sentiment_threshold: float = -0.7
    repeat_limit: int = 3


@dataclass(frozen=True)
class DialogSettings:
    policy: str = "scripted"
    pack: str = "ecommerce"
    llm: LlmSettings = field(default_factory=LlmSettings)
    crm: CrmSettings = field(default_factory=CrmSettings)
    kb: KbSettings = field(default_factory=KbSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    # A tool still running after this long makes the policy yield a short Filler phrase.
    filler_after_s: float = 1.0
    # Longest Say chunk, passed to the sentence chunker (the TTS engine's sweet spot).
    max_say_chars: int = 60


def _llm(s: Section, policy: str) -> LlmSettings:
    d = LlmSettings()
    cfg = LlmSettings(
        model=s.str("model", d.model),
        api_base=s.url("api_base", d.api_base),
        api_key_env=s.str("api_key_env", d.api_key_env),
        timeout_s=s.float("timeout_s", d.timeout_s, lo=0.5, hi=120),
        temperature=s.float("temperature", d.temperature, lo=0, hi=2),
        max_tokens=s.int("max_tokens", d.max_tokens, lo=16, hi=8192),
        max_tool_rounds=s.int("max_tool_rounds", d.max_tool_rounds, lo=1, hi=8),
        failures_to_open=s.int("failures_to_open", d.failures_to_open, lo=1, hi=20),
        probe_every_s=s.float("probe_every_s", d.probe_every_s, lo=0.05, hi=600),
        probe_timeout_s=s.float("probe_timeout_s", d.probe_timeout_s, lo=0.1, hi=60),
    )
    if policy == "llm" and not cfg.model.strip():
        raise ConfigError(s.key("model"), "is required when dialog.policy is llm")
    s.done()
    return cfg


def _crm(s: Section) -> CrmSettings:
    d = CrmSettings()
    cfg = CrmSettings(
        kind=s.choice("kind", CRM_KINDS, d.kind),
        base_url=s.url("base_url", d.base_url),
        auth_header=s.str("auth_header", d.auth_header),
        auth_env=s.str("auth_env", d.auth_env),
        timeout_s=s.float("timeout_s", d.timeout_s, lo=0.1, hi=60),
    )
    if cfg.kind == "rest" and not cfg.base_url:
        raise ConfigError(s.key("base_url"), "is required when crm.kind is rest")
    if not cfg.auth_header.strip() or ":" in cfg.auth_header:
        raise ConfigError(s.key("auth_header"), "must be an HTTP header name")
    s.done()
    return cfg


def _kb(s: Section) -> KbSettings:
    d = KbSettings()
    cfg = KbSettings(
        embedding_model=s.str("embedding_model", d.embedding_model),
        api_base=s.url("api_base", d.api_base),
        api_key_env=s.str("api_key_env", d.api_key_env),
        top_k=s.int("top_k", d.top_k, lo=1, hi=20),
        index_pack_kb=s.bool("index_pack_kb", d.index_pack_kb),
    )
    s.done()
    return cfg


def _escalation(s: Section) -> EscalationSettings:
    d = EscalationSettings()
    cfg = EscalationSettings(
        max_call_s=s.float("max_call_s", d.max_call_s, lo=30, hi=86400),
        sentiment_threshold=s.float("sentiment_threshold", d.sentiment_threshold, lo=-1, hi=0),
        repeat_limit=s.int("repeat_limit", d.repeat_limit, lo=1, hi=20),
    )
    s.done()
    return cfg


def parse_dialog_settings(data: Mapping[str, Any] | None) -> DialogSettings:
    s = Section(data, "dialog")
    d = DialogSettings()
    policy = s.choice("policy", POLICIES, d.policy)
    settings = DialogSettings(
        policy=policy,
        pack=s.choice("pack", PACKS, d.pack),
        llm=_llm(s.section("llm"), policy),
        crm=_crm(s.section("crm")),
        kb=_kb(s.section("kb")),
        escalation=_escalation(s.section("escalation")),
        filler_after_s=s.float("filler_after_s", d.filler_after_s, lo=0.1, hi=30),
        max_say_chars=s.int("max_say_chars", d.max_say_chars, lo=10, hi=500),
    )
    s.done()
    return settings
