"""Hotwords for one call: the industry pack, the tenant's file and the call's own list, merged into one short
term list for the engines that take context.

Industry file `<dir>/<industry>.yaml`: `{industry: str, terms: [str, …], aliases: {term: [spelling, …]}}`;
alias spellings follow the terms. An alias may never bring in an escalation word ("반품: [환불]" would make
the recogniser write 환불 for 반품 and hand the caller to a human): such a file is rejected.
Tenant file `<dir>/tenants/<tenant>.txt`: one term per line, `#` starts a comment, blank lines are skipped.
Per call: the channel variable `callagent_hotwords` ("우리몰, 골드회원"), sent in the fork metadata `hotwords`.
The call's terms come first, then the tenant's, then the industry's, so the cap drops the most general.
No source may put an escalation word in the list. Files are cached by path and modification time.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

# Engines that take a text prompt (VibeVoice) slow down and drift with long prompts: keep it short.
MAX_TERMS = 200
MAX_TERM_CHARS = 40
_INDUSTRY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# Words that send a caller to a human (agent/dialog/escalation.py and intents.py): never a recognition bias.
ESCALATION_WORDS = ("환불", "보상", "배상", "피해", "소송", "변호사", "고소", "상담원", "상담사", "직원", "매니저",
                    "책임자", "담당자", "refund", "compensation", "lawsuit", "lawyer", "attorney", "agent",
                    "operator", "human")

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
        for spelling in _str_list(spellings, path, f"aliases[{term!r}]"):
            added = escalation_word(spelling)
            if added and added not in str(term).lower():
                raise ValueError(f"hotword file {path}: alias {spelling!r} of {term!r} biases recognition "
                                 f"toward the escalation word {added!r}")
            terms.append(spelling)
    return tuple(terms)


def escalation_word(term: str) -> str | None:
    """The escalation word `term` contains, if any."""
    low = term.lower()
    return next((w for w in ESCALATION_WORDS if w in low), None)


def parse_tenant_file(path: Path) -> tuple[str, ...]:
    """One term per line; `#` comments and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"hotword file {path} is not UTF-8: {exc}") from exc
    return tuple(t for t in (line.split("#", 1)[0].strip() for line in text.splitlines()) if t)


def parse_variable(value: str) -> tuple[str, ...]:
    """The channel variable `callagent_hotwords`: terms separated by commas (or '|', which FreeSWITCH
    dialplans use where a comma would split an application argument)."""
    return tuple(t.strip() for t in re.split(r"[,|]", value) if t.strip())


def merge_hotwords(industry: Sequence[str], tenant: Sequence[str], per_call: Sequence[str]) -> tuple[str, ...]:
    """The call's list: per-call terms, then the tenant's, then the industry's; de-duplicated, order kept,
    at most MAX_TERMS; terms that are too long, have control characters or contain an escalation word are
    dropped (with a log line)."""
    kept: list[str] = []
    for term in (*per_call, *tenant, *industry):
        term = " ".join(term.split())
        if not term:
            continue
        word = escalation_word(term)
        if word or len(term) > MAX_TERM_CHARS or not term.isprintable():
            log.info("hotword %r dropped (%s)", term[:MAX_TERM_CHARS],
                     f"escalation word {word!r}" if word else "too long or not printable")
            continue
        kept.append(term)
    return _dedupe(kept, MAX_TERMS)


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
    return _cached(directory / f"{industry}.yaml", parse_file, f"industry {industry!r}")


def tenant_terms(directory: str | Path, tenant: str) -> tuple[str, ...]:
    """The tenant's file `<dir>/tenants/<tenant>.txt`; () when the tenant has none."""
    if not tenant or tenant == "default":
        return ()
    if not _INDUSTRY_RE.match(tenant):
        raise ValueError(f"tenant name {tenant!r} must be letters, digits, '_' or '-'")
    path = Path(directory) / "tenants" / f"{tenant}.txt"
    return _cached(path, parse_tenant_file, None)


def _cached(path: Path, parse: Callable[[Path], tuple[str, ...]], warn_as: str | None) -> tuple[str, ...]:
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        with _lock:
            first = path not in _warned_missing
            _warned_missing.add(path)
        if first and warn_as:
            log.warning("no hotword file %s; calls for %s get no hotwords from it", path, warn_as)
        return ()
    with _lock:
        cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    terms = parse(path)
    with _lock:
        _cache[path] = (mtime, terms)
    return terms


def load(directory: str | Path, industry: str, tenant_extra: Sequence[str] = (), *,
         tenant: str = "") -> tuple[str, ...]:
    """The call's hotwords: `tenant_extra` (the fork metadata's per-call list) first, then the tenant's file,
    then the industry pack; see `merge_hotwords`. No industry → the other two alone."""
    pack = _industry_terms(Path(directory), industry) if industry else ()
    return merge_hotwords(pack, tenant_terms(directory, tenant), tenant_extra)
