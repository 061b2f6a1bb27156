"""`callagent bench asr`: CER (Korean, space-insensitive) and WER (English) per engine over the speech set's
transcribed rows, as recorded and through a telephone band (8 kHz G.711 μ-law), with real-time factors.
"""

from __future__ import annotations

import csv
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from agent.config import Config
from agent.engines.asr.base import AsrContext, AsrEngine
from agent.engines.asr.registry import create_engine
from agent.engines.errors import EngineError
from agent.ops import textmetrics
from agent.ops.bench.mulaw import telephone_band

log = logging.getLogger(__name__)

CONDITIONS = ("as given", "8 kHz μ-law")
ENGINE_RATE = 16000                      # every engine here decodes 16 kHz; the phone band goes back up to it
# Languages an engine has a model for; engines not listed are asked about every language.
ENGINE_LANGUAGES = {"vosk": ("ko",)}
NOT_CONFIGURED = ("fake",)               # a canned-text engine has no accuracy to measure
QUICK_FILES_PER_LANGUAGE = 3
# "Diane: Hello? | Sheila: …" — speaker labels in multi-speaker references are not spoken words.
_LABEL = re.compile(r"^\s*[^:|]{1,24}:\s*")
HOTWORDS_PER_FILE = 3


def hotwords_for(reference: str, pack_terms: Iterable[str] = ()) -> tuple[str, ...]:
    """The hotwords a file is asked with: the shipped packs' terms that its reference contains, else its
    longest words of three or more letters (the rare nouns a tenant would list), at most HOTWORDS_PER_FILE."""
    flat = reference.replace(" ", "").lower()
    found = [t for t in pack_terms if t.replace(" ", "").lower() in flat]
    if not found:
        words = dict.fromkeys(w for w in re.findall(r"\w+", reference) if len(w) >= 3 and not w.isdigit())
        found = sorted(words, key=len, reverse=True)
    return tuple(found[:HOTWORDS_PER_FILE])


def recalled(hotwords: Iterable[str], hypothesis: str) -> int:
    """How many hotwords the hypothesis contains (spaces and case ignored)."""
    flat = hypothesis.replace(" ", "").lower()
    return sum(1 for w in hotwords if w.replace(" ", "").lower() in flat)


@dataclass(frozen=True)
class SpeechRow:
    file: str
    language: str
    duration_s: float
    reference: str


def load_manifest(speech_dir: Path) -> list[SpeechRow]:
    """Rows of MANIFEST.tsv that have a reference transcript (not `-`)."""
    rows: list[SpeechRow] = []
    with (speech_dir / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            ref = (rec.get("reference_transcript") or "").strip()
            if not ref or ref == "-":
                continue
            rows.append(SpeechRow(rec["file"], rec["language"], float(rec["duration_s"]), clean_reference(ref)))
    return rows


def clean_reference(ref: str) -> str:
    """Joins multi-speaker references without their `Speaker:` labels."""
    if " | " not in ref:
        return ref
    return " ".join(_LABEL.sub("", part) for part in ref.split(" | "))


def metric_for(language: str) -> str:
    return "CER" if language == "ko" else "WER"


def score(language: str, ref: str, hyp: str) -> tuple[int, int]:
    """(edits, reference units): characters without spaces for Korean, words otherwise."""
    return textmetrics.cer(ref, hyp) if language == "ko" else textmetrics.wer(ref, hyp)


def aggregate(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Totals per (engine, condition, language): corpus error rate (Σ edits / Σ reference units), not the mean
    of per-file rates, and RTF as Σ processing time / Σ audio time. Rows without a score are skipped."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("edits") is None:
            continue
        groups.setdefault((row["engine"], row["condition"], row["language"]), []).append(row)
    out = []
    for (engine, condition, language), items in groups.items():
        audio = sum(r["duration_s"] for r in items)
        proc = sum(r["proc_s"] for r in items)
        out.append({
            "engine": engine, "condition": condition, "language": language, "metric": metric_for(language),
            "files": len(items), "audio_s": round(audio, 2),
            "edits": sum(r["edits"] for r in items), "ref_units": sum(r["ref_units"] for r in items),
            "error_rate": textmetrics.rate([(r["edits"], r["ref_units"]) for r in items]),
            "rtf": proc / audio if audio else None,
            **_recall(items),
        })
    return sorted(out, key=lambda r: (r["engine"], r["language"], CONDITIONS.index(r["condition"])))


def _recall(items: list[dict[str, Any]]) -> dict[str, Any]:
    asked = sum(len(r.get("hotwords") or ()) for r in items)
    hits = sum(r.get("hotword_hits") or 0 for r in items)
    return {"hotwords": asked, "hotword_hits": hits, "hotword_recall": hits / asked if asked else None}


def engine_names(cfg: Config) -> list[str]:
    """Vosk always, then the configured engine and any engine with an options block in callagent.yaml."""
    names = ["vosk", cfg.worker.asr_engine, *cfg.worker.asr_options]
    return [n for i, n in enumerate(names) if n not in names[:i] and n not in NOT_CONFIGURED]


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 (channels averaged) at the file's own rate."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    return np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16), int(rate)


def _pick(rows: list[SpeechRow], quick: bool) -> list[SpeechRow]:
    if not quick:
        return rows
    out: list[SpeechRow] = []
    for lang in dict.fromkeys(r.language for r in rows):
        out += [r for r in rows if r.language == lang][:QUICK_FILES_PER_LANGUAGE]
    return out


def score_engine(name: str, engine: AsrEngine, rows: list[SpeechRow], speech_dir: Path,
                 pack_terms: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], str | None]:
    """Per-file rows for one engine; stops with a reason if the engine fails before its first result.
    Each file goes with its hotwords (engines that take context use them) and counts how many came back."""
    langs = ENGINE_LANGUAGES.get(name)
    out: list[dict[str, Any]] = []
    scored = 0
    for row in rows:
        base = {"engine": name, "file": row.file, "language": row.language, "metric": metric_for(row.language),
                "duration_s": row.duration_s, "reference": row.reference}
        if langs is not None and row.language not in langs:
            out += [{**base, "condition": c, "status": f"n/a — no {_lang_name(row.language)} model for this engine"}
                    for c in CONDITIONS]
            continue
        pcm, rate = load_audio(speech_dir / row.file)
        words = hotwords_for(row.reference, pack_terms)
        for condition in CONDITIONS:
            audio, audio_rate = (pcm, rate) if condition == CONDITIONS[0] else (
                telephone_band(pcm, rate, ENGINE_RATE), ENGINE_RATE)
            started = time.perf_counter()
            try:
                result = engine.transcribe(audio, audio_rate, AsrContext(hotwords=words, language=row.language))
            except EngineError as exc:
                if not scored:
                    return out, f"unavailable: {exc}"
                out.append({**base, "condition": condition, "status": f"error: {exc}"})
                continue
            proc_s = time.perf_counter() - started
            scored += 1
            edits, units = score(row.language, row.reference, result.text)
            out.append({**base, "condition": condition, "status": "ok", "hypothesis": result.text,
                        "edits": edits, "ref_units": units, "error_rate": edits / units if units else 0.0,
                        "hotwords": list(words), "hotword_hits": recalled(words, result.text),
                        "proc_s": proc_s, "rtf": proc_s / row.duration_s})
    return out, None


def _lang_name(code: str) -> str:
    return {"en": "English", "ko": "Korean"}.get(code, code)


def _pack_terms(cfg: Config) -> tuple[str, ...]:
    from agent.engines.asr import hotwords

    directory = cfg.path(cfg.worker.hotwords_dir)
    terms: list[str] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            terms += hotwords.load(directory, path.stem)
        except ValueError as exc:
            log.warning("asr bench: %s", exc)
    return tuple(dict.fromkeys(terms))


def run(cfg: Config, speech_dir: Path, *, quick: bool = False, engines: Sequence[str] = (),
        dataset: Path | None = None) -> dict[str, Any]:
    """Scores every configured engine; an engine that cannot start is reported, not fatal. `engines`
    (`--engine` specs, agent.lifecycle.compare.parse_spec) picks the engines and adds a segment-by-segment
    comparison; `dataset` scores an exported split (its dev set) instead of the shared recordings."""
    from agent.lifecycle import compare

    if dataset is not None:
        rows: list[Any] = compare.dataset_rows(dataset)
    elif not (speech_dir / "MANIFEST.tsv").is_file():
        return {"speech_dir": str(speech_dir), "error": "MANIFEST.tsv not found", "engines": [], "files": [],
                "totals": []}
    else:
        rows = _pick(load_manifest(speech_dir), quick)
    specs = [compare.parse_spec(e, cfg.worker.asr_options) for e in engines] or [
        compare.EngineSpec(n, n, dict(cfg.worker.asr_options.get(n, {}))) for n in engine_names(cfg)]
    results: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for spec in specs:
        started = time.perf_counter()
        try:
            engine = create_engine(spec.name, spec.options)
        except EngineError as exc:
            results.append({"engine": spec.label, "status": f"unavailable: {exc}"})
            continue
        load_s = time.perf_counter() - started
        try:
            per_file, problem = score_engine(spec.label, engine, rows, speech_dir, _pack_terms(cfg))
        finally:
            engine.close()
        results.append({"engine": spec.label, "status": problem or "ok", "load_s": round(load_s, 2)})
        files += per_file
        log.info("asr bench: %s done (%s)", spec.label, problem or "ok")
    out = {"speech_dir": str(dataset or speech_dir), "quick": quick, "conditions": list(CONDITIONS),
           "engines": results, "files": files, "totals": aggregate(files)}
    ran = [r["engine"] for r in results if r["status"] == "ok"]
    if len(engines) > 1 and len(ran) > 1:  # the engines that ran; the others' status says why not
        out["comparison"] = compare.compare(files, ran)
    return out
