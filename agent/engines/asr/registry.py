"""Builds the configured ASR engine by name, falling back to Vosk when the chosen one cannot start here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent.config import WorkerConfig
from agent.engines.asr.base import AsrEngine
from agent.engines.loading import import_engine, with_fallback

log = logging.getLogger(__name__)

# Engine name → module exposing `create(options, key) -> AsrEngine`; imported only when chosen, so a
# missing GPU stack costs nothing unless that engine is configured.
ENGINES: dict[str, str] = {
    "vosk": "agent.engines.asr.vosk",
    "fake": "agent.engines.asr.fake",
    "google": "agent.engines.asr.google",
    "vibevoice-vllm": "agent.engines.asr.vibevoice_vllm",
    "vibevoice-transformers": "agent.engines.asr.vibevoice_transformers",
    "vibevoice-streaming": "agent.engines.asr.vibevoice_streaming",
}
FALLBACK_ENGINE = "vosk"
NO_FAILOVER = (FALLBACK_ENGINE, "fake")  # the CPU engine itself, and the test engine whose failures tests see

# Engine name → times it was unavailable and replaced by the fallback (read by metrics).
fallbacks: dict[str, int] = {}


def create_engine(name: str, options: Mapping[str, Any]) -> AsrEngine:
    return import_engine(ENGINES, name, options, config_key="worker.asr.engine", options_prefix="worker.asr.engines")


def create_asr(cfg: WorkerConfig) -> AsrEngine:
    """The configured engine, or Vosk if that one is unavailable (never a crash loop over a missing GPU); a GPU
    engine that starts is wrapped so that Vosk also takes an utterance it fails later (agent/engines/breaker.py)."""
    engine = with_fallback(cfg.asr_engine, FALLBACK_ENGINE, lambda n: create_engine(n, cfg.asr_options.get(n, {})),
                           fallbacks, log, "Accuracy drops to the CPU engine's until this is fixed.")
    if getattr(engine, "name", FALLBACK_ENGINE) in NO_FAILOVER:
        return engine
    from agent.engines.breaker import BREAKERS, CircuitBreaker, FailoverAsr

    breaker = BREAKERS.setdefault(f"asr {engine.name}", CircuitBreaker(f"asr {engine.name}"))
    return FailoverAsr(engine, lambda: create_engine(FALLBACK_ENGINE, cfg.asr_options.get(FALLBACK_ENGINE, {})),
                       breaker)
