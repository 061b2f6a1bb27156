"""Voice presets pickled by transformers 4.51 (the upstream VibeVoice-Realtime pin) load under this
transformers with a working KV cache: `load_preset` rebuilds the legacy `DynamicCache`, and a tiny Qwen2 (the LM
VibeVoice-Realtime uses) continues from the rebuilt cache exactly as from a fresh prefill of the same prompt.

`legacy_preset/preset_451.pt` was written by real transformers 4.51.3 (`legacy_preset/make_legacy_preset.py`);
the other presets here are written in the test: a 4.51 DynamicCache pickles as its class reference plus the
`__dict__` {_seen_tokens, key_cache, value_cache}, which is what `legacy_cache` builds.
"""

from __future__ import annotations

import copy
import inspect
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from transformers.cache_utils import DynamicCache  # noqa: E402
from transformers.modeling_outputs import BaseModelOutputWithPast  # noqa: E402

from agent.engines.tts.vibevoice_realtime import load_preset, upgrade_legacy_caches  # noqa: E402

HERE = Path(__file__).resolve().parent / "legacy_preset"
PROMPTS = {"lm": [1, 2, 3, 4, 5], "tts_lm": [2, 3, 4, 5, 6, 7], "neg_lm": [3], "neg_tts_lm": [4, 5]}
NEXT = [9, 10, 11]


def tiny_qwen2() -> Qwen2ForCausalLM:
    """The model that wrote preset_451.pt (its weights; the LM head, not in a preset, is seeded)."""
    cfg = Qwen2Config(vocab_size=16, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(cfg).eval()
    model.model.load_state_dict(torch.load(HERE / "qwen2_tiny.pt", weights_only=True))
    return model


def cache_of(output: Any) -> Any:
    return output["cache"] if "cache" in output else output["past_key_values"]


def continued_logits(model: Qwen2ForCausalLM, cache: Any, ids: list[int]) -> Any:
    # transformers 5 renamed `past_key_values` (what upstream passes) to `cache`; both reach the same code.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=True, **{name: cache}).logits


def fresh_logits(model: Qwen2ForCausalLM, prompt: list[int], ids: list[int]) -> Any:
    with torch.no_grad():
        return model(input_ids=torch.tensor([prompt + ids]), use_cache=False).logits[:, -len(ids):]


def assert_continues_like_a_fresh_prefill(model: Qwen2ForCausalLM, preset: dict[str, Any]) -> None:
    for key, prompt in PROMPTS.items():
        cache = cache_of(preset[key])
        assert isinstance(cache, DynamicCache) and len(cache.layers) == 2
        assert cache.get_seq_length() == len(prompt)
        got = continued_logits(model, copy.deepcopy(cache), NEXT)
        torch.testing.assert_close(got, fresh_logits(model, prompt, NEXT), rtol=1e-5, atol=1e-5)


def test_a_preset_written_by_transformers_4_51_continues_like_a_fresh_prefill() -> None:
    model = tiny_qwen2()
    preset = load_preset(HERE / "preset_451.pt", "cpu", allow_pickle=True)
    assert set(preset) == set(PROMPTS)
    # The prompt's hidden state is this model's: the weights are the ones that wrote the preset.
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([PROMPTS["lm"]])).last_hidden_state
    torch.testing.assert_close(preset["lm"].last_hidden_state, hidden, rtol=1e-5, atol=1e-5)
    assert_continues_like_a_fresh_prefill(model, preset)
    # The attribute upstream reads (`.past_key_values`) is the rebuilt cache too.
    assert len(preset["tts_lm"].past_key_values.layers) == 2


def test_without_the_rebuild_the_4_51_cache_is_broken() -> None:
    """What `torch.load` alone gives under transformers 5: the class with the 4.51 state and no layers."""
    preset = torch.load(HERE / "preset_451.pt", map_location="cpu", weights_only=False)
    cache = cache_of(preset["lm"])
    assert "layers" not in cache.__dict__ and set(cache.__dict__) == {"_seen_tokens", "key_cache", "value_cache"}
    with pytest.raises(AttributeError):
        continued_logits(tiny_qwen2(), cache, NEXT)


def legacy_cache(keys: list[Any], values: list[Any], seen: int) -> DynamicCache:
    """A DynamicCache exactly as transformers 4.51 pickles one: the class and its 4.51 instance dict."""
    cache = DynamicCache.__new__(DynamicCache)
    cache.__dict__.update({"_seen_tokens": seen, "key_cache": keys, "value_cache": values})
    return cache


def prefill(model: Qwen2ForCausalLM, prompt: list[int], *, legacy: bool) -> BaseModelOutputWithPast:
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([prompt]), use_cache=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    if legacy:
        cache = legacy_cache([layer.keys for layer in cache.layers], [layer.values for layer in cache.layers],
                             len(prompt))
    return BaseModelOutputWithPast(last_hidden_state=out.last_hidden_state, cache=cache)


def pickled_state_keys(path: Path) -> set[str]:
    """The keys of the state the pickle stream gives the DynamicCache object (what 4.51 wrote)."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = list(pickletools.genops(data))
    at = next(i for i, (op, arg, _) in enumerate(ops)
              if op.name in ("GLOBAL", "STACK_GLOBAL") and arg == "transformers.cache_utils DynamicCache")
    keys: set[str] = set()
    for op, arg, _ in ops[at:]:
        if op.name == "BUILD":
            break
        if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and arg in ("_seen_tokens", "key_cache", "value_cache",
                                                                       "layers"):
            keys.add(arg)
    return keys


def test_a_legacy_cache_written_here_is_rebuilt_and_a_current_one_left_alone(tmp_path: Path) -> None:
    model = tiny_qwen2()
    legacy = {key: prefill(model, prompt, legacy=True) for key, prompt in PROMPTS.items()}
    torch.save(legacy, tmp_path / "legacy.pt")
    # Same pickle shape as the file transformers 4.51 wrote.
    assert pickled_state_keys(tmp_path / "legacy.pt") == pickled_state_keys(HERE / "preset_451.pt") == {
        "_seen_tokens", "key_cache", "value_cache"}
    assert_continues_like_a_fresh_prefill(model, load_preset(tmp_path / "legacy.pt", "cpu", allow_pickle=True))

    current = {key: prefill(model, prompt, legacy=False) for key, prompt in PROMPTS.items()}
    torch.save(current, tmp_path / "current.pt")
    loaded = load_preset(tmp_path / "current.pt", "cpu", allow_pickle=True)
    layers = {key: list(cache_of(out).layers) for key, out in loaded.items()}
    assert upgrade_legacy_caches(loaded) == 0
    assert all(cache_of(out).layers == layers[key] for key, out in loaded.items())  # the same layer objects
    assert_continues_like_a_fresh_prefill(model, loaded)


def test_a_rebuilt_preset_deep_copies_per_request() -> None:
    """The engine deep-copies the preset for each sentence: a copy grows, the preset stays as loaded."""
    model = tiny_qwen2()
    preset = load_preset(HERE / "preset_451.pt", "cpu", allow_pickle=True)
    first = copy.deepcopy(preset)
    a = continued_logits(model, cache_of(first["lm"]), NEXT)
    assert cache_of(first["lm"]).get_seq_length() == len(PROMPTS["lm"]) + len(NEXT)
    assert cache_of(preset["lm"]).get_seq_length() == len(PROMPTS["lm"])
    b = continued_logits(model, cache_of(copy.deepcopy(preset)["lm"]), NEXT)
    torch.testing.assert_close(a, b)


def test_legacy_edge_cases() -> None:
    k = torch.ones(1, 2, 3, 4)
    skipped = legacy_cache([torch.tensor([]), k], [torch.tensor([]), k], 0)
    assert upgrade_legacy_caches({"lm": skipped}) == 1
    assert skipped.layers[1].keys.shape == (1, 2, 3, 4) and not skipped.layers[0].is_initialized
    empty = legacy_cache([], [], 0)
    assert upgrade_legacy_caches([empty]) == 1 and empty.get_seq_length() == 0
    with pytest.raises(ValueError, match="tokens seen"):
        upgrade_legacy_caches(legacy_cache([k], [k], 7))
    with pytest.raises(ValueError, match="value layers"):
        upgrade_legacy_caches(legacy_cache([k, k], [k], 3))
