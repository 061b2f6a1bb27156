"""Builds the controller's dependencies from the config: store, TTS, prompt cache, dialog policy."""

from __future__ import annotations

import logging

from agent.call.session import CallDeps
from agent.config import Config
from agent.dialog.settings import parse_dialog_settings
from agent.ops.stats import ControllerStats
from agent.store.calls import open_call_store
from agent.store.db import Database

log = logging.getLogger(__name__)

# Pre-synthesized at start for every call rate (PCMU/PCMA 8 kHz, G.722 16 kHz) so the greeting plays within
# ~300 ms of answer and fault prompts never wait on TTS (and never synthesize on the gevent hub).
WARM_RATES = (8000, 16000)


def controller_id(cfg: Config) -> str:
    """Which controller served a call: its listen address, stored with the call (several share a database)."""
    host, port = cfg.controller.listen
    return f"{host}:{port}"


def build_call_deps(cfg: Config, db: Database | None) -> CallDeps:
    from agent.dialog.factory import create_policy
    from agent.dialog.packs import load_pack
    from agent.dialog.settings import PACKS
    from agent.engines.tts.cache import PromptCache
    from agent.engines.tts.registry import create_tts
    from agent.engines.tts.speaker import Speaker
    from agent.engines.tts.spool import Spool

    spool = Spool(cfg.path(cfg.tts.spool_dir))
    if cfg.tts.worker_url == "local":
        engine = create_tts(cfg.tts)
        speaker = Speaker(engine, spool, voice=cfg.tts.voice, max_chunk_chars=cfg.tts.max_chunk_chars)
    else:
        from agent.engines.tts.remote import RemoteSpeaker, from_config

        engine = from_config(cfg.tts)  # fixed prompts are synthesized once through it, then cached here
        speaker = RemoteSpeaker(engine, spool, voice=cfg.tts.voice, max_chunk_chars=cfg.tts.max_chunk_chars)
    prompts = PromptCache(engine, cfg.path(cfg.tts.cache_dir), voice=cfg.tts.voice)
    c = cfg.controller
    # Each call plays its pack's greeting (chosen per call by callagent_industry): warm them all.
    greetings = [load_pack(name).greeting for name in PACKS]
    fixed = [c.greeting, c.apology, c.transfer_notice, *c.no_input_prompts, c.goodbye, c.slow_filler,
             c.slow_filler_more, *greetings]
    for rate in WARM_RATES:
        prompts.warm(fixed, rate)
    policy = create_policy(parse_dialog_settings(cfg.dialog), db)
    # Closes the calls this controller (its listen address) left open when it was killed.
    store = open_call_store(cfg, db, owner=controller_id(cfg))
    from agent.privacy.commands import controller_hooks

    # Secrets masked out of channel variables; recordings sealed (encrypted at rest) after each call.
    hooks = controller_hooks(cfg, db, store.flush)
    return CallDeps(cfg=cfg, policy=policy, speaker=speaker, prompts=prompts, store=store, stats=ControllerStats(),
                    **hooks)
