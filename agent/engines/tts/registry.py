"""Builds the configured TTS engine; an engine that cannot start here falls back to espeak-ng, loudly.

Each engine module exposes `create(options, key) -> TtsEngine`; `key` is the dotted config key of its options.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from agent.config import ConfigError, TtsConfig
from agent.engines.errors import EngineUnavailable
from agent.engines.tts.base import TtsEngine

log = logging.getLogger(__name__)

FALLBACK_ENGINE = "espeak"
ENGINES: dict[str, str] = {
    "espeak": "agent.engines.tts.espeak",
    "fake": "agent.engines.tts.fake",
    "vibevoice-realtime": "agent.engines.tts.vibevoice_realtime",
}
# Engine name -> how many times it was unavailable and espeak-ng took over (exported as a metric).
FALLBACK_COUNTS: dict[str, int] = {}


def build_engine(name: str, options: Mapping[str, Any]) -> TtsEngine:
    """Imports and creates one engine; a missing module or dependency counts as EngineUnavailable."""
    if name not in ENGINES:
        raise ConfigError("tts.engine", f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    try:
        module = importlib.import_module(ENGINES[name])
    except ImportError as exc:
        # GPU engines need torch and model code that a CPU host may not have.
        raise EngineUnavailable(name, f"cannot import {ENGINES[name]}: {exc}") from exc
    return module.create(options, f"tts.engines.{name}")


def create_tts(cfg: TtsConfig) -> TtsEngine:
    """The engine named by `tts.engine`, or espeak-ng when that one cannot start here."""
    try:
        return build_engine(cfg.engine, cfg.options.get(cfg.engine, {}))
    except EngineUnavailable as exc:
        if cfg.engine == FALLBACK_ENGINE:
            raise
        FALLBACK_COUNTS[cfg.engine] = FALLBACK_COUNTS.get(cfg.engine, 0) + 1
        log.warning(
            "TTS ENGINE UNAVAILABLE: %r cannot start (%s); falling back to espeak-ng. "
            "Callers will hear the robotic fallback voice until this is fixed.",
            cfg.engine, exc,
        )
    return build_engine(FALLBACK_ENGINE, cfg.options.get(FALLBACK_ENGINE, {}))
