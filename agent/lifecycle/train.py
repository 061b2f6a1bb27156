"""`callagent train asr-lora`: PEFT LoRA on VibeVoice-ASR's language model over an exported dataset.

Each sample is the training-time prompt (the checkpoint's chat template, as the engine builds it) followed by
the target the model emits: the compact JSON array of `lora_finetune.py` `_format_transcription`, then
`<|im_end|>`. The loss covers only that answer. A checkpoint (adapter, optimizer, RNG, step) is written every
`checkpoint_every` optimizer steps; a run started again on the same output directory continues from the
newest one and ends where an uninterrupted run would have. The result is `<out>/adapter`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from agent.lifecycle.dataset import read_split
from agent.media.resample import resample

log = logging.getLogger(__name__)

RATE = 24000
ANSWER_END = "<|im_end|>\n"
LM_PREFIX = r"model\.language_model\..*\."  # LoRA stays off the audio encoders and connectors


@dataclass(frozen=True)
class LoraSettings:
    base_model: str
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    learning_rate: float = 1e-4
    max_steps: int = 1000
    grad_accum: int = 4
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    max_audio_s: float = 30.0
    seed: int = 0
    device: str = "cuda"
    dtype: str = "bfloat16"


def load_settings(path: Path, **overrides: Any) -> LoraSettings:
    """models/asr-lora.yaml, with command-line overrides (None means: keep the file's value)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    lora, train = data.get("lora", {}), data.get("train", {})
    s = LoraSettings(
        base_model=str(data.get("base_model", "")), r=int(lora.get("r", 16)), alpha=int(lora.get("alpha", 32)),
        dropout=float(lora.get("dropout", 0.05)),
        target_modules=tuple(lora.get("target_modules", LoraSettings.target_modules)),
        **{k: type(getattr(LoraSettings, k))(v) for k, v in train.items() if k in _TRAIN_KEYS},
    )
    return replace(s, **{k: v for k, v in overrides.items() if v is not None})


_TRAIN_KEYS = ("learning_rate", "max_steps", "grad_accum", "checkpoint_every", "keep_checkpoints", "max_audio_s",
               "seed", "device", "dtype")


def target_regex(modules: tuple[str, ...]) -> str:
    return LM_PREFIX + "(" + "|".join(modules) + ")$"


def answer_text(sample: Mapping[str, Any]) -> str:
    """The assistant turn as the model is trained to write it (compact JSON, keys Start/End/Speaker/Content)."""
    segs = [{"Start": round(float(s["start"]), 2), "End": round(float(s["end"]), 2), "Speaker": int(s["speaker"]),
             "Content": str(s["text"])} for s in sample["segments"]]
    return json.dumps(segs, ensure_ascii=False, separators=(",", ":")) + ANSWER_END


def load_clip(path: str, max_s: float) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = resample(data.mean(axis=1), int(rate), RATE).astype(np.float32)
    return audio[:int(max_s * RATE)]


def build_example(processor: Any, sample: Mapping[str, Any], max_audio_s: float) -> dict[str, Any]:
    """Model inputs and labels for one sample: -100 over the prompt, the answer's token ids after it."""
    import torch

    from agent.engines.asr.vibevoice_transformers import build_inputs

    audio = load_clip(str(sample["audio_path"]), max_audio_s)
    context = "\n".join(sample.get("customized_context") or [])
    inputs = build_inputs(processor, [audio], [context])
    answer = processor.tokenizer(answer_text(sample), add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([inputs["input_ids"], answer], dim=1)
    labels = torch.full_like(ids, -100)
    labels[:, inputs["input_ids"].shape[1]:] = answer
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_values": inputs["input_values"],
            "padding_mask": inputs["padding_mask"], "labels": labels}


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = []
    for p in out.glob("checkpoint-*"):
        if p.name.split("-")[-1].isdigit() and (p / "state.json").is_file():
            found.append((int(p.name.split("-")[-1]), p))
    return sorted(found)


def _dtype(torch: Any, s: LoraSettings) -> Any:
    return torch.float32 if s.device == "cpu" else getattr(torch, s.dtype)


def load_for_training(s: LoraSettings) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import VibeVoiceAsrForConditionalGeneration, VibeVoiceAsrProcessor

    processor = VibeVoiceAsrProcessor.from_pretrained(s.base_model, local_files_only=True)
    model = VibeVoiceAsrForConditionalGeneration.from_pretrained(s.base_model, dtype=_dtype(torch, s),
                                                                 local_files_only=True).to(s.device)
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                        target_modules=target_regex(s.target_modules), bias="none")
    return get_peft_model(model, config), processor


def _order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def train(s: LoraSettings, data_dir: Path, out: Path, *, max_steps: int | None = None,
          on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Trains until `max_steps` (default s.max_steps) optimizer steps, resuming from `out`'s newest checkpoint.
    Returns {"step", "losses", "adapter", "resumed_from", "seconds"}."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    samples = read_split(Path(data_dir) / "train") if (Path(data_dir) / "train").is_dir() else read_split(data_dir)
    if not samples:
        raise FileNotFoundError(f"no training samples under {data_dir} (run `callagent dataset export` first)")
    goal = max_steps if max_steps is not None else s.max_steps
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(s.seed)
    model, processor = load_for_training(s)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.learning_rate)
    step, losses, resumed = 0, [], None
    ckpts = _checkpoints(out)
    if ckpts:
        step, path = ckpts[-1]
        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        optim.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        state = json.loads((path / "state.json").read_text())
        losses = state["losses"]
        torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True))
        resumed = step
        log.info("resuming LoRA training at step %d from %s", step, path)
    model.train()
    started = time.monotonic()
    per_epoch = len(samples)
    while step < goal:
        optim.zero_grad()
        total = 0.0
        for micro in range(s.grad_accum):
            k = step * s.grad_accum + micro  # the sample index is a function of the step: resuming is exact
            sample = samples[_order(per_epoch, s.seed, k // per_epoch)[k % per_epoch]]
            batch = {key: v.to(s.device) for key, v in build_example(processor, sample, s.max_audio_s).items()}
            batch["input_values"] = batch["input_values"].to(_dtype(torch, s))
            loss = model(**batch).loss / s.grad_accum
            loss.backward()
            total += float(loss.detach())
        if not math.isfinite(total):
            raise FloatingPointError(f"loss is {total} at step {step + 1}")
        optim.step()
        step += 1
        losses.append(round(total, 5))
        if on_step is not None:
            on_step(step, total)
        if step % s.checkpoint_every == 0 or step == goal:
            _save_checkpoint(model, optim, out, step, losses, s.keep_checkpoints)
    adapter = out / "adapter"
    model.save_pretrained(str(adapter))
    (adapter / "training.json").write_text(json.dumps({
        "base_model": s.base_model, "steps": step, "losses": losses, "data_dir": str(data_dir),
        "samples": len(samples), "r": s.r, "alpha": s.alpha, "learning_rate": s.learning_rate}, indent=1))
    return {"step": step, "losses": losses, "adapter": str(adapter), "resumed_from": resumed,
            "seconds": round(time.monotonic() - started, 2)}


def _save_checkpoint(model: Any, optim: Any, out: Path, step: int, losses: list[float], keep: int) -> None:
    import torch

    path = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    torch.save(optim.state_dict(), tmp / "optimizer.pt")
    torch.save(torch.get_rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses}))  # written last: complete
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    for _, old in _checkpoints(out)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
