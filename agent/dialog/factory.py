"""Builds the one Policy the controller uses for every call, from DialogSettings and the database."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import date

from agent.config_reader import ConfigError
from agent.dialog.crm import CrmAdapter, RestCrm
from agent.dialog.knowledge import KnowledgeBase, index_paths
from agent.dialog.packs import Pack, load_pack
from agent.dialog.policy import Policy
from agent.dialog.settings import PACKS, DialogSettings
from agent.store.db import Database

log = logging.getLogger(__name__)


def _env(name: str | None, key: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(key, f"environment variable {name} is not set")
    return value


def build_crm(settings: DialogSettings, db: Database | None) -> CrmAdapter | None:
    crm = settings.crm
    if crm.kind == "rest":
        auth = _env(crm.auth_env, "dialog.crm.auth_env")
        return RestCrm(crm.base_url or "", auth_header=crm.auth_header, auth_value=auth, timeout_s=crm.timeout_s)
    if crm.kind == "embedded" and db is not None:
        from agent.store.crm import EmbeddedCrm

        return EmbeddedCrm(db)
    return None


def build_kb(settings: DialogSettings, pack: Pack, db: Database | None) -> KnowledgeBase | None:
    if db is None:
        return None
    kb = settings.kb
    api_key = _env(kb.api_key_env, "dialog.kb.api_key_env")
    # Every pack's sample KB: a DID may pick another industry than the configured default.
    for name in PACKS if kb.index_pack_kb else ():
        files = load_pack(name).kb_files()
        try:
            # Idempotent: unchanged files are skipped, so every start may call it.
            index_paths(db, files, name, embedding_model=kb.embedding_model, api_base=kb.api_base,
                        api_key=api_key)
        except Exception as exc:  # noqa: BLE001 - a KB problem must not stop calls from being answered
            log.warning("could not index the %s sample KB: %s", name, type(exc).__name__)
    return KnowledgeBase(db, pack.name, embedding_model=kb.embedding_model, api_base=kb.api_base,
                         api_key=api_key, top_k=kb.top_k)


def create_policy(settings: DialogSettings, db: Database | None, *,
                  clock: Callable[[], float] = time.monotonic, today: Callable[[], date] = date.today) -> Policy:
    """The scripted policy, or the LLM policy (with the scripted one as its per-turn fallback).

    With db=None there is no CRM (unless crm.kind is rest) and no KB: account questions go to a person.
    Raises ConfigError when a named environment variable (api_key_env, auth_env) is not set.
    """
    pack = load_pack(settings.pack)
    crm = build_crm(settings, db)
    kb = build_kb(settings, pack, db)
    if settings.policy == "llm":
        from agent.dialog.llm import LlmClient, preload
        from agent.dialog.llm_guard import guard_for
        from agent.dialog.llm_policy import LlmPolicy

        cfg = settings.llm
        client = LlmClient(model=cfg.model, api_base=cfg.api_base, api_key=_env(cfg.api_key_env,
                                                                                   "dialog.llm.api_key_env"),
                           temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        preload()  # pay litellm's import time at start, not on the first caller's turn
        log.info("dialog policy: llm (%s), pack %s", cfg.model, pack.name)
        return LlmPolicy(settings=settings, pack=pack, llm=client, crm=crm, kb=kb, clock=clock, today=today,
                         guard=guard_for(client, cfg))
    from agent.dialog.scripted import ScriptedPolicy

    log.info("dialog policy: scripted, pack %s", pack.name)
    return ScriptedPolicy(settings=settings, pack=pack, crm=crm, kb=kb, clock=clock, today=today)
