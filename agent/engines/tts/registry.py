"""Builds the configured TTS engine; an engine that cannot start here falls back to espeak-ng, loudly.

Each engine module exposes `create(options, key) -> TtsEngine`; `key` is the dotted config key of its options.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent.config import TtsConfig
from agent.engines.breaker import BREAKERS, CircuitBreaker, FailoverTts
from agent.engines.loading import import_engine, with_fallback
from agent.engines.tts.base import TtsEngine

log = logging.getLogger(__name__)

FALLBACK_ENGINE = "espeak"
ENGINES: dict[str, str] = {
    "azure": "agent.engines.tts.azure",
    "espeak": "agent.engines.tts.espeak",
    "fake": "agent.engines.tts.fake",
    "vibevoice-realtime": "agent.engines.tts.vibevoice_realtime",
}
# The CPU engine itself, and the test engine whose failures tests want to see, are not wrapped.
NO_FAILOVER = (FALLBACK_ENGINE, "espeak-ng", "fake")
# Engine name -> how many times it was unavailable and espeak-ng took over (exported as a metric).
FALLBACK_COUNTS: dict[str, int] = {}


def build_engine(name: str, options: Mapping[str, Any]) -> TtsEngine:
    return import_engine(ENGINES, name, options, config_key="tts.engine", options_prefix="tts.engines")


def create_tts(cfg: TtsConfig) -> TtsEngine:
    """The engine named by `tts.engine`, or espeak-ng when that one cannot start here; a GPU engine that
    starts is wrapped so that espeak-ng also takes over while it fails later (agent/engines/breaker.py)."""
    engine = with_fallback(cfg.engine, FALLBACK_ENGINE, lambda n: build_engine(n, cfg.options.get(n, {})),
                           FALLBACK_COUNTS, log, "Callers hear the robotic fallback voice until this is fixed.")
    if getattr(engine, "name", FALLBACK_ENGINE) in NO_FAILOVER:
        return engine
    breaker = BREAKERS.setdefault(f"tts {engine.name}", CircuitBreaker(f"tts {engine.name}"))
    return FailoverTts(engine, lambda: build_engine(FALLBACK_ENGINE, cfg.options.get(FALLBACK_ENGINE, {})),
                       breaker)
