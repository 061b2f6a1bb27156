"""Writes the two files next to it with transformers 4.51.3 (the upstream VibeVoice-Realtime pin), so the tests
load a voice preset exactly as upstream's `torch.save` wrote it: a dict {lm, tts_lm, neg_lm, neg_tts_lm} of
`BaseModelOutputWithPast` whose `past_key_values` is a 4.51 `DynamicCache` (state: `_seen_tokens`, `key_cache`,
`value_cache`), prefilled by a tiny random Qwen2 (2 layers, hidden 32: the LM VibeVoice-Realtime uses).

Run once, under transformers==4.51.3 (not this project's version): `python make_legacy_preset.py`.
`qwen2_tiny.pt` holds the model's weights (a plain state dict), `preset_451.pt` the preset; `PROMPTS` in
test_vibevoice_preset_cache.py must match the prompts below.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from transformers import Qwen2Config, Qwen2Model

HERE = Path(__file__).resolve().parent
PROMPTS = {"lm": [1, 2, 3, 4, 5], "tts_lm": [2, 3, 4, 5, 6, 7], "neg_lm": [3], "neg_tts_lm": [4, 5]}


def config() -> Qwen2Config:
    return Qwen2Config(vocab_size=16, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)


def main() -> None:
    assert transformers.__version__ == "4.51.3", transformers.__version__
    torch.manual_seed(0)
    model = Qwen2Model(config()).eval()
    preset = {}
    with torch.no_grad():
        for key, ids in PROMPTS.items():
            preset[key] = model(input_ids=torch.tensor([ids]), use_cache=True)
    torch.save(preset, HERE / "preset_451.pt")
    torch.save(model.state_dict(), HERE / "qwen2_tiny.pt")


if __name__ == "__main__":
    main()
