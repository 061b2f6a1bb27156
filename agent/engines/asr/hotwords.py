"""Hotword packs: `<dir>/<industry>.yaml` plus per-call tenant extras, flattened into one short term list.

File format: `{industry: str, terms: [str, …], aliases: {term: [spelling, …]}}`. Alias spellings follow
the terms. Files are cached by path and modification time, so 100 calls cost one parse.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

# Engines that take a text prompt (VibeVoice) slow down and drift with long prompts: keep it short.
MAX_TERMS = 200
_INDUSTRY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

_cache: dict[Path, tuple[int, tuple[str, ...]]] = {}
_warned_missing: set[Path] = set()
_lock = threading.Lock()


def _str_list(value: Any, path: Path, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"hotword file {path}: {what} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def parse_file(path: Path) -> tuple[str, ...]:
    """Terms then alias spellings from one file, in file order; ValueError naming the file if malformed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"hotword file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"hotword file {path}: must be a mapping with 'terms'")
    unknown = sorted(set(data) - {"industry", "terms", "aliases"})
    if unknown:
        raise ValueError(f"hotword file {path}: unknown key {unknown[0]!r}")
    if not isinstance(data.get("industry", ""), str):
        raise ValueError(f"hotword file {path}: industry must be a string")
    terms = _str_list(data.get("terms"), path, "terms")
    aliases = data.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise ValueError(f"hotword file {path}: aliases must map a term to a list of spellings")
    for term, spellings in aliases.items():
        terms.extend(_str_list(spellings, path, f"aliases[{term!r}]"))
    return tuple(terms)


def _dedupe(items: Iterable[str], cap: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if item and item not in seen:
            seen[item] = None
            if len(seen) == cap:
                break
    return tuple(seen)


def _industry_terms(directory: Path, industry: str) -> tuple[str, ...]:
    if not _INDUSTRY_RE.match(industry):
        raise ValueError(f"industry name {industry!r} must be letters, digits, '_' or '-'")
    path = directory / f"{industry}.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        with _lock:
            first = path not in _warned_missing
            _warned_missing.add(path)
        if first:
            log.warning("no hotword file %s; calls for industry %r get no hotwords", path, industry)
        return ()
    with _lock:
        cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    terms = parse_file(path)
    with _lock:
        _cache[path] = (mtime, terms)
    return terms


def load(directory: str | Path, industry: str, tenant_extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Tenant extras first (they are the most specific, so the cap never drops them), then the industry pack;
    de-duplicated, order kept, at most MAX_TERMS. No industry → the extras alone."""
    pack = _industry_terms(Path(directory), industry) if industry else ()
    return _dedupe([*tenant_extra, *pack], MAX_TERMS)
