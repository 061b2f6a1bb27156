"""`callagent train asr-lora` on CPU with the tiny random checkpoint: the loss is finite, the adapter changes the
model's output and loads in the vibevoice-transformers engine, and a resumed run ends where an uninterrupted one
does."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from agent.lifecycle import train as lora


def settings(base: Path) -> lora.LoraSettings:
    s = lora.load_settings(Path(__file__).resolve().parents[2] / "models" / "asr-lora.yaml")
    return replace(s, base_model=str(base), device="cpu", grad_accum=2, checkpoint_every=2, learning_rate=5e-3,
                   r=4, alpha=8, dropout=0.0)


def test_shipped_settings_target_only_the_language_model() -> None:
    s = lora.load_settings(Path(__file__).resolve().parents[2] / "models" / "asr-lora.yaml")
    assert (s.r, s.alpha, s.learning_rate, s.checkpoint_every) == (16, 32, 1e-4, 100)
    import re

    rx = re.compile(lora.target_regex(s.target_modules))
    assert rx.match("model.language_model.layers.3.self_attn.q_proj")
    assert rx.match("model.language_model.layers.0.mlp.down_proj")
    assert not rx.match("model.acoustic_connector.fc1")
    assert not rx.match("model.language_model.layers.0.self_attn.q_proj.lora_A")


def test_answer_is_the_compact_json_the_model_emits() -> None:
    sample = {"segments": [{"speaker": 0, "text": "환불 [계좌번호 ****6789]", "start": 0.0, "end": 1.234}]}
    assert lora.answer_text(sample) == '[{"Start":0.0,"End":1.23,"Speaker":0,"Content":"환불 [계좌번호 ****6789]"}]' \
                                      "<|im_end|>\n"


def test_labels_cover_only_the_answer(tiny_asr: Path, small_dataset: Path) -> None:
    from transformers import VibeVoiceAsrProcessor

    from agent.lifecycle.dataset import read_split

    proc = VibeVoiceAsrProcessor.from_pretrained(str(tiny_asr))
    sample = read_split(small_dataset / "train")[0]
    ex = lora.build_example(proc, sample, 30.0)
    answer = ex["labels"][0][ex["labels"][0] != -100]
    assert proc.tokenizer.decode(answer) == lora.answer_text(sample)
    assert ex["labels"].shape == ex["input_ids"].shape
    assert (ex["input_ids"][0, -len(answer):] == answer).all()


def test_train_resume_and_adapter_changes_the_output(tiny_asr: Path, small_dataset: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    s = settings(tiny_asr)
    straight = lora.train(s, small_dataset, tmp_path / "straight", max_steps=4)
    assert straight["step"] == 4 and all(math.isfinite(x) for x in straight["losses"])
    assert straight["losses"][-1] < straight["losses"][0]  # a high learning rate on 3 samples: it learns

    first = lora.train(s, small_dataset, tmp_path / "resumed", max_steps=2)  # "killed" after step 2
    assert first["resumed_from"] is None
    second = lora.train(s, small_dataset, tmp_path / "resumed", max_steps=4)
    assert second["resumed_from"] == 2 and second["losses"] == straight["losses"]
    from safetensors.torch import load_file

    a = load_file(str(Path(straight["adapter"]) / "adapter_model.safetensors"))
    b = load_file(str(Path(second["adapter"]) / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(".language_model." in k for k in a)

    # The adapter changes the logits of the base model on the same input.
    from peft import PeftModel
    from transformers import VibeVoiceAsrForConditionalGeneration, VibeVoiceAsrProcessor

    from agent.lifecycle.dataset import read_split

    proc = VibeVoiceAsrProcessor.from_pretrained(str(tiny_asr))
    ex = lora.build_example(proc, read_split(small_dataset / "dev")[0], 30.0)
    ex.pop("labels")
    base = VibeVoiceAsrForConditionalGeneration.from_pretrained(str(tiny_asr)).eval()
    with torch.no_grad():
        before = base(**ex, sample=False).logits
        tuned = PeftModel.from_pretrained(base, straight["adapter"]).merge_and_unload().eval()
        after = tuned(**ex, sample=False).logits
    assert (after - before).abs().max() > 1e-3
