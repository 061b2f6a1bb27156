"""Operator commands of the model lifecycle: `callagent dataset export|review`, `callagent train asr-lora`,
`callagent synth calls`, and `callagent bench asr --engine A --engine B [--dataset DIR]`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import Config

DEFAULT_LORA = "models/asr-lora.yaml"


def _db(cfg: Config):  # noqa: ANN202 - agent.store.db.Database, imported late like the other commands
    from agent.store.db import open_database

    return open_database(cfg)


def cmd_dataset_export(cfg: Config, args: argparse.Namespace) -> int:
    from agent.lifecycle.dataset import export_dataset
    from agent.privacy.commands import recording_keyring
    from agent.privacy.keys import RecordingKeyError

    try:
        result = export_dataset(_db(cfg), recording_keyring(cfg), Path(args.out), call_ids=args.call or (),
                                pii=args.pii, dev=args.dev, test=args.test)
    except (RecordingKeyError, FileNotFoundError) as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 1 if result["dropped"] and not any(result["segments"].values()) else 0  # nothing exported: say so


def cmd_dataset_review(cfg: Config, args: argparse.Namespace) -> int:
    from agent.lifecycle.review import ReviewError, save_review

    try:
        stored = save_review(_db(cfg), args.call_id, args.seq, args.text, reviewer=args.reviewer)
    except ReviewError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    print(f"call {args.call_id} turn {args.seq}: {stored}")
    return 0


def _settings_path(cfg: Config, name: str) -> Path:
    """Beside callagent.yaml, else the working directory, else the source tree's models/."""
    for candidate in (cfg.path(name), Path(name), Path(__file__).resolve().parents[2] / name):
        if candidate.is_file():
            return candidate
    return cfg.path(name)


def cmd_train_asr_lora(cfg: Config, args: argparse.Namespace) -> int:
    from agent.lifecycle.train import load_settings, train

    settings = load_settings(_settings_path(cfg, args.config_file), base_model=args.base_model, device=args.device,
                             checkpoint_every=args.checkpoint_every, learning_rate=args.learning_rate)
    if not settings.base_model or not Path(settings.base_model, "config.json").is_file():
        print(f"callagent: base model {settings.base_model!r} has no config.json (set base_model in "
              f"{args.config_file} or pass --base-model)", file=sys.stderr)
        return 2

    def progress(step: int, loss: float) -> None:
        print(json.dumps({"step": step, "loss": round(loss, 5)}), flush=True)

    try:
        result = train(settings, Path(args.data), Path(args.out), max_steps=args.max_steps, on_step=progress)
    except FileNotFoundError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"adapter": result["adapter"], "steps": result["step"], "last_loss": result["losses"][-1],
                      "resumed_from": result["resumed_from"], "seconds": result["seconds"]}))
    return 0


def cmd_synth_calls(cfg: Config, args: argparse.Namespace) -> int:
    from agent.lifecycle.synth import SynthError, synth_calls

    try:
        written = synth_calls(Path(args.out), packs=args.pack or (), model=args.model, count=args.count,
                              seed=args.seed, backend=args.backend)
    except SynthError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    for item in written:
        print(json.dumps(item, ensure_ascii=False))
    return 0


def comparison_md(result: dict[str, Any], max_diffs: int = 20) -> str:
    comp = result.get("comparison")
    if not comp:
        return "no comparison (needs two --engine)"
    lines = ["| Engine | Condition | Segments | Error rate |", "|---|---|---|---|"]
    lines += [f"| {t['engine']} | {t['condition']} | {t['segments']} | {t['error_rate']:.1%} |" for t in comp["totals"]]
    differing = [d for d in comp["diffs"] if d["best"] != "tie"][:max_diffs]
    if differing:
        lines += ["", "| Segment | Condition | Reference | " + " | ".join(comp["engines"]) + " |",
                  "|---|---|---|" + "---|" * len(comp["engines"])]
        for d in differing:
            cells = [f"{d['engines'][e]['hypothesis']} ({d['engines'][e]['edits']})" for e in comp["engines"]]
            lines.append(f"| {Path(d['file']).name} | {d['condition']} | {d['reference']} | "
                         + " | ".join(cells) + " |")
    if "verdict" in result:
        v = result["verdict"]
        lines += ["", "Promote: " + ("yes" if v["promote"] else "no — " + "; ".join(v["reasons"]))]
    return "\n".join(lines)


def cmd_bench_compare(cfg: Config, args: argparse.Namespace) -> int:
    """`bench asr` with `--engine`/`--dataset`: the named engines on one set, segment by segment."""
    from agent.lifecycle.compare import decide
    from agent.ops.bench import asr, report
    from agent.sim.scenario import speech_dir

    dataset = Path(args.dataset) if args.dataset else None
    result = asr.run(cfg, speech_dir(), quick=args.quick, engines=args.engine or (), dataset=dataset)
    comp = result.get("comparison")
    if comp and dataset is not None and len(comp["engines"]) == 2:
        verdict = decide(comp["totals"], [], comp["engines"][0], comp["engines"][1])
        result["verdict"] = {"promote": verdict.promote, "reasons": list(verdict.reasons),
                             "note": "dev-set part of the rule; run the shared recordings for the rest"}
    out = Path(args.out) if args.out else cfg.path("bench/results") / f"asr-compare-{datetime.now():%Y%m%d-%H%M%S}.json"
    report.write_json(out, {"bench": "asr-compare", "date": datetime.now().isoformat(timespec="seconds"),
                            "engines": args.engine, "dataset": args.dataset, "result": result})
    print(comparison_md(result))
    print(f"JSON: {out}")
    return 0 if all(e["status"] == "ok" for e in result["engines"]) else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser("dataset", help="fine-tuning data from recorded calls").add_subparsers(
        dest="dataset_command", required=True)
    export = ds.add_parser("export", help="caller segments of sealed recordings (needs the recording key)")
    export.add_argument("--out", required=True, help="directory to write train/ dev/ test/ and manifest.jsonl")
    export.add_argument("--call", action="append", help="only this call (repeatable; default: every recording)")
    export.add_argument("--pii", choices=("silence", "drop"), default="silence",
                        help="a segment with personal data: silence its estimated span, or leave it out")
    export.add_argument("--dev", type=float, default=0.1, help="share of calls in dev (by call id hash)")
    export.add_argument("--test", type=float, default=0.1, help="share of calls in test")
    export.set_defaults(fn=cmd_dataset_export)
    review = ds.add_parser("review", help="store a reviewer's correction of one caller turn")
    review.add_argument("call_id")
    review.add_argument("seq", type=int, help="the turn's seq (callagent calls --json shows it)")
    review.add_argument("text")
    review.add_argument("--reviewer", default="")
    review.set_defaults(fn=cmd_dataset_review)
    tr = sub.add_parser("train", help="model training").add_subparsers(dest="train_command", required=True)
    lora = tr.add_parser("asr-lora", help="LoRA on VibeVoice-ASR's language model (resumes from --out)")
    lora.add_argument("--data", required=True, help="an exported dataset (its train/ split is used)")
    lora.add_argument("--out", required=True, help="run directory: checkpoint-N/ and adapter/")
    lora.add_argument("--config-file", default=DEFAULT_LORA, help=f"LoRA settings (default {DEFAULT_LORA})")
    lora.add_argument("--base-model", help="override base_model")
    lora.add_argument("--device", choices=("cuda", "cpu"))
    lora.add_argument("--max-steps", type=int)
    lora.add_argument("--checkpoint-every", type=int)
    lora.add_argument("--learning-rate", type=float)
    lora.set_defaults(fn=cmd_train_asr_lora)
    syn = sub.add_parser("synth", help="synthetic call audio").add_subparsers(dest="synth_command", required=True)
    calls = syn.add_parser("calls", help="two-speaker Korean dialogs → stereo 8 kHz μ-law-band WAV + transcript")
    calls.add_argument("--out", required=True)
    calls.add_argument("--pack", action="append", help="industry pack (repeatable; default: every pack)")
    calls.add_argument("--model", help="VibeVoice-TTS 1.5B checkpoint directory (transformers-native)")
    calls.add_argument("--backend", choices=("auto", "vibevoice", "espeak"), default="auto")
    calls.add_argument("--count", type=int, default=1, help="dialogs per pack")
    calls.add_argument("--seed", type=int, default=0)
    calls.set_defaults(fn=cmd_synth_calls)


def add_bench_options(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--engine", action="append", metavar="SPEC",
                       help="asr: engine to compare, `name[,key=value…]` (repeat: first is the base)")
    bench.add_argument("--dataset", help="asr: an exported dataset directory; its dev/ split is scored")
    bench.add_argument("--out", help="asr comparison: JSON file to write")
