"""Engine against engine on the same set (`callagent bench asr --engine A --engine B`): engine specs, the rows
of an exported dataset split, per-segment diffs, and the promotion rule of docs/models.md.

Both engines' hypotheses are scored with one normalisation: numbers spelled out in Korean (num2words) on
both sides, so "3월" and "삼 월" agree whichever way the reference writes them, then textmetrics' CER
(space-insensitive) or WER.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.lifecycle.dataset import read_split
from agent.ops import textmetrics

_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_MASK_LABEL = re.compile(r"\[[^\[\]]{1,40}\]")

# The promotion rule (docs/models.md, "Promotion"): the candidate must win on the calls it was tuned for and
# must not lose on general speech or on hotwords.
MIN_DEV_SEGMENTS = 200
MIN_GAIN_POINTS = 1.0        # CER percentage points on the dev set, phone band as recorded
MIN_GAIN_RELATIVE = 0.05
MAX_REGRESSION_POINTS = 0.5  # on the shared recordings, each condition
MAX_RTF_RATIO = 1.2


def spell_numbers(text: str) -> str:
    """Digit runs as Korean words ("3월" → "삼월", "1,500원" → "천오백원"); other text unchanged."""
    from num2words import num2words

    def spell(m: re.Match[str]) -> str:
        raw = m.group(0).replace(",", "")
        try:
            return num2words(float(raw) if "." in raw else int(raw), lang="ko")
        except (ValueError, OverflowError, NotImplementedError):
            return m.group(0)

    return _DIGITS.sub(spell, text)


def score(language: str, ref: str, hyp: str) -> tuple[int, int]:
    """(edits, reference units) with numbers spelled on both sides."""
    ref, hyp = spell_numbers(ref), spell_numbers(hyp)
    return textmetrics.cer(ref, hyp) if language == "ko" else textmetrics.wer(ref, hyp)


@dataclass(frozen=True)
class EngineSpec:
    label: str          # as given on the command line, the name in reports
    name: str           # the registry name
    options: dict[str, Any]


def parse_spec(spec: str, configured: Mapping[str, Mapping[str, Any]]) -> EngineSpec:
    """`name` or `name,key=value,…`: the engine's options from callagent.yaml with these on top, e.g.
    `vibevoice-transformers,adapter=runs/asr-lora/adapter`."""
    name, *pairs = [p.strip() for p in spec.split(",")]
    options = dict(configured.get(name, {}))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"engine option {pair!r} in {spec!r} is not key=value")
        options[key] = yaml.safe_load(value) if value else ""
    return EngineSpec(spec, name, options)


@dataclass(frozen=True)
class DatasetRow:
    """Shaped like bench.asr.SpeechRow: `file` is absolute, so `speech_dir / file` is the file itself."""

    file: str
    language: str
    duration_s: float
    reference: str


def dataset_rows(directory: Path, split: str = "dev") -> list[DatasetRow]:
    """An exported split (`callagent dataset export`) as bench rows. Masked items are not in the reference:
    their audio was silenced."""
    base = directory / split if (directory / split).is_dir() else directory
    rows = []
    for sample in read_split(base):
        text = " ".join(str(s["text"]) for s in sample["segments"])  # type: ignore[union-attr]
        rows.append(DatasetRow(str(sample["audio_path"]), "ko", float(sample["audio_duration"]),  # type: ignore[arg-type]
                               " ".join(_MASK_LABEL.sub(" ", text).split())))
    return rows


def compare(files: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Per-segment diffs and totals of each engine on the rows every engine scored, same normalisation."""
    by_key: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for row in files:
        if row.get("status") == "ok":
            by_key.setdefault((row["file"], row["condition"]), {})[row["engine"]] = row
    diffs: list[dict[str, Any]] = []
    totals: dict[tuple[str, str], list[int]] = {}
    for (file, condition), rows in sorted(by_key.items()):
        if any(label not in rows for label in labels):
            continue  # only segments every engine answered: the same set
        first = rows[labels[0]]
        entry: dict[str, Any] = {"file": file, "condition": condition, "reference": first["reference"],
                                 "engines": {}}
        for label in labels:
            edits, units = score(first["language"], first["reference"], rows[label].get("hypothesis", ""))
            entry["engines"][label] = {"hypothesis": rows[label].get("hypothesis", ""), "edits": edits,
                                       "units": units, "rtf": rows[label].get("rtf")}
            acc = totals.setdefault((label, condition), [0, 0, 0])
            acc[0] += edits
            acc[1] += units
            acc[2] += 1
        edits = [entry["engines"][label]["edits"] for label in labels]
        entry["best"] = labels[edits.index(min(edits))] if len(set(edits)) > 1 else "tie"
        diffs.append(entry)
    summary = [{"engine": label, "condition": cond, "segments": n, "edits": e, "units": u,
                "error_rate": e / u if u else 0.0} for (label, cond), (e, u, n) in sorted(totals.items())]
    return {"engines": list(labels), "normalisation": "NFKC, punctuation dropped, numbers spelled in Korean",
            "totals": summary, "diffs": diffs}


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: tuple[str, ...]


def decide(dev: Iterable[Mapping[str, Any]], general: Iterable[Mapping[str, Any]], base: str, candidate: str,
           *, rtf: Mapping[str, float] | None = None,
           recall: Mapping[str, float | None] | None = None) -> Verdict:
    """The promotion rule. `dev`: compare()["totals"] on the exported dev set; `general`: on the shared
    recordings (both conditions). Every failed condition is a reason; no reasons means promote."""
    def rates(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
        return {(r["engine"], r["condition"]): r for r in rows}

    d, g = rates(dev), rates(general)
    reasons: list[str] = []
    for cond in sorted({c for _, c in d}):
        b, c = d.get((base, cond)), d.get((candidate, cond))
        if b is None or c is None:
            reasons.append(f"dev set, {cond}: both engines must be scored")
            continue
        if c["segments"] < MIN_DEV_SEGMENTS:
            reasons.append(f"dev set, {cond}: {c['segments']} segments, at least {MIN_DEV_SEGMENTS} needed")
        gain = (b["error_rate"] - c["error_rate"]) * 100
        if gain < MIN_GAIN_POINTS or gain < MIN_GAIN_RELATIVE * b["error_rate"] * 100:
            reasons.append(f"dev set, {cond}: {gain:+.2f} points, needs ≥ {MIN_GAIN_POINTS} and "
                           f"≥ {MIN_GAIN_RELATIVE:.0%} of the base's {b['error_rate']:.1%}")
    if not d:
        reasons.append("no dev-set comparison")
    for (label, cond), row in sorted(g.items()):
        if label != candidate or (base, cond) not in g:
            continue
        worse = (row["error_rate"] - g[(base, cond)]["error_rate"]) * 100
        if worse > MAX_REGRESSION_POINTS:
            reasons.append(f"shared recordings, {cond}: {worse:+.2f} points worse (at most {MAX_REGRESSION_POINTS})")
    if rtf and rtf.get(base) and rtf.get(candidate) and rtf[candidate] > MAX_RTF_RATIO * rtf[base]:
        reasons.append(f"real-time factor {rtf[candidate]:.2f} > {MAX_RTF_RATIO} × base {rtf[base]:.2f}")
    if recall and recall.get(base) is not None and recall.get(candidate) is not None \
            and recall[candidate] < recall[base]:  # type: ignore[operator]
        reasons.append(f"hotword recall {recall[candidate]:.1%} < base {recall[base]:.1%}")
    return Verdict(not reasons, tuple(reasons))
