"""Engine loading shared by the ASR and TTS registries: import by name, and fall back loudly when one cannot start.

Engine modules are imported only when chosen, so a CPU host pays nothing for a GPU stack it does not use; an
engine that cannot start (no GPU, no model files, module missing) is replaced by the CPU engine with one loud
line and a counter the metrics export — never a crash loop.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from agent.config_reader import ConfigError
from agent.engines.errors import EngineUnavailable

T = TypeVar("T")


def import_engine(modules: Mapping[str, str], name: str, options: Mapping[str, Any], *, config_key: str,
                  options_prefix: str) -> Any:
    """Builds engine `name` via its module's `create(options, key)`."""
    if name not in modules:
        raise ConfigError(config_key, f"unknown engine {name!r}; known: {', '.join(sorted(modules))}")
    try:
        module = importlib.import_module(modules[name])
    except ImportError as exc:
        raise EngineUnavailable(name, f"cannot import {modules[name]} (not importable here): {exc}") from exc
    return module.create(options, f"{options_prefix}.{name}")


def with_fallback(name: str, fallback: str, build: Callable[[str], T], counts: dict[str, int],
                  log: logging.Logger, consequence: str) -> T:
    """`build(name)`, or `build(fallback)` when `name` is unavailable; the fallback's own failure is raised."""
    try:
        return build(name)
    except EngineUnavailable as exc:
        if name == fallback:
            raise
        counts[name] = counts.get(name, 0) + 1
        log.warning("ENGINE UNAVAILABLE: %r cannot start (%s); FALLING BACK to %r. %s",
                    name, exc, fallback, consequence)
    return build(fallback)


def require_model_files(engine: str, model_path: Path, device: str, torch: Any) -> None:
    """Start-up checks shared by the in-process GPU engines: the weights are there, and so is the GPU."""
    if not (model_path / "config.json").is_file():
        raise EngineUnavailable(engine, f"no model at {model_path} (config.json missing); see docs/models.md")
    if device == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailable(engine, "device is cuda but no CUDA GPU is visible")
