"""Builds the configured ASR engine by name, falling back to Vosk when the chosen one cannot start here."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from agent.config import ConfigError, WorkerConfig
from agent.engines.asr.base import AsrEngine
from agent.engines.errors import EngineUnavailable

log = logging.getLogger(__name__)

# Engine name → module exposing `create(options, key) -> AsrEngine`; imported only when chosen, so a
# missing GPU stack costs nothing unless that engine is configured.
ENGINES: dict[str, str] = {
    "vosk": "agent.engines.asr.vosk",
    "fake": "agent.engines.asr.fake",
    "vibevoice-vllm": "agent.engines.asr.vibevoice_vllm",
    "vibevoice-transformers": "agent.engines.asr.vibevoice_transformers",
    "vibevoice-streaming": "agent.engines.asr.vibevoice_streaming",
}
FALLBACK_ENGINE = "vosk"

# Engine name → times it was unavailable and replaced by the fallback (read by metrics).
fallbacks: dict[str, int] = {}


def options_key(name: str) -> str:
    return f"worker.asr.engines.{name}"


def create_engine(name: str, options: Mapping[str, Any]) -> AsrEngine:
    """Imports and builds one engine; an engine whose module cannot be imported is EngineUnavailable."""
    if name not in ENGINES:
        raise ConfigError("worker.asr.engine", f"unknown ASR engine {name!r}; known: {', '.join(ENGINES)}")
    try:
        module = importlib.import_module(ENGINES[name])
    except ImportError as exc:
        raise EngineUnavailable(name, f"module {ENGINES[name]} is not importable: {exc}") from exc
    return module.create(options, options_key(name))


def create_asr(cfg: WorkerConfig) -> AsrEngine:
    """The configured engine, or Vosk if that one is unavailable (never a crash loop over a missing GPU)."""
    name = cfg.asr_engine
    try:
        return create_engine(name, cfg.asr_options.get(name, {}))
    except EngineUnavailable as exc:
        if name == FALLBACK_ENGINE:
            raise
        fallbacks[name] = fallbacks.get(name, 0) + 1
        log.warning("ASR engine %r is unavailable (%s); FALLING BACK to %r", name, exc, FALLBACK_ENGINE)
    return create_engine(FALLBACK_ENGINE, cfg.asr_options.get(FALLBACK_ENGINE, {}))
