"""A stand-in for the `vibevoice` package's Realtime streaming interface, written to disk as a package.

Faithful to what the engine relies on (docs/models.md, "VibeVoice-Realtime"): the three import paths;
`VibeVoiceStreamingProcessor.from_pretrained(path)` with `.tokenizer` and
`process_input_with_cached_prompt(text=, cached_prompt=, padding=, return_tensors=, return_attention_mask=)`;
`VibeVoiceStreamingForConditionalGenerationInference.from_pretrained(path, torch_dtype=, device_map=,
attn_implementation=)`, `.eval()`, `.set_ddpm_inference_steps(num_steps=)`, and `generate(**inputs,
audio_streamer=, stop_check_fn=, all_prefilled_outputs=, …)` that asserts batch size 1, calls
`audio_streamer.put(chunk[batch, 3200], sample_indices)` per latent, honours `stop_check_fn`, grows the KV
cache it was handed, and calls `audio_streamer.end()`; `AudioStreamer(batch_size)` with `get_stream(i)`.
It emits one 3200-sample chunk per character of text. "[hang]" in the text stalls until stopped and
"[boom]" raises after one chunk. Every generate() is recorded in TRACE; overlapping use of one instance
raises, since the real model holds one stream per instance.
"""

from __future__ import annotations

import sys
from pathlib import Path

_STREAMER = '''
import queue


class AudioStreamer:
    def __init__(self, batch_size, stop_signal=None, timeout=None):
        self.batch_size = batch_size
        self.stop_signal = stop_signal
        self.timeout = timeout
        self.audio_queues = [queue.Queue() for _ in range(batch_size)]
        self.finished = [False] * batch_size

    def put(self, audio_chunks, sample_indices):
        for i, idx in enumerate(sample_indices.tolist()):
            if not self.finished[idx]:
                self.audio_queues[idx].put(audio_chunks[i].detach().cpu(), timeout=self.timeout)

    def end(self, sample_indices=None):
        indices = range(self.batch_size) if sample_indices is None else sample_indices.tolist()
        for idx in indices:
            if not self.finished[idx]:
                self.finished[idx] = True
                self.audio_queues[idx].put(self.stop_signal)

    def get_stream(self, sample_idx):
        while True:
            value = self.audio_queues[sample_idx].get()
            if value is self.stop_signal:
                return
            yield value
'''

_PROCESSOR = '''
import torch


class _Tokenizer:
    pad_token_id = 0


class VibeVoiceStreamingProcessor:
    def __init__(self):
        self.tokenizer = _Tokenizer()

    @classmethod
    def from_pretrained(cls, path):
        return cls()

    def process_input_with_cached_prompt(self, text, cached_prompt, padding=True, return_tensors="pt",
                                         return_attention_mask=True):
        assert isinstance(cached_prompt, dict) and "tts_lm" in cached_prompt
        ids = torch.tensor([list((text.strip() + "\\n").encode())])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "tts_lm_input_ids": ids,
                "tts_lm_attention_mask": torch.ones_like(ids), "tts_text_ids": ids,
                "speech_input_mask": torch.zeros_like(ids, dtype=torch.bool)}
'''

_MODEL = '''
import math
import threading
import time

import torch

TRACE = []  # (instance, text, start, end, stopped)
PRESET_WAS_GROWN = []  # per generate(): did the prefilled cache it got already carry an earlier stream?
CHUNK_DELAY_S = 0.003
_lock = threading.Lock()


class VibeVoiceStreamingForConditionalGenerationInference:
    instances = []

    def __init__(self, path, kwargs):
        self.path, self.kwargs = path, kwargs
        self.steps = None
        self.index = len(self.instances)
        self._busy = False
        self.instances.append(self)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        return cls(path, kwargs)

    def eval(self):
        return self

    def set_ddpm_inference_steps(self, num_steps):
        self.steps = num_steps

    def generate(self, tts_text_ids, audio_streamer, stop_check_fn, all_prefilled_outputs, tokenizer,
                 cfg_scale, **kwargs):
        assert tts_text_ids.shape[0] == 1, "batch_size == 1 is asserted upstream"
        with _lock:
            if self._busy:
                raise RuntimeError("two streams on one model instance")
            self._busy = True
        text = bytes(tts_text_ids[0].tolist()).decode().strip()
        start, stopped = time.monotonic(), False
        PRESET_WAS_GROWN.append("grown" in all_prefilled_outputs["tts_lm"])
        all_prefilled_outputs["tts_lm"]["grown"] = True  # the real KV cache grows in place
        try:
            n = 10**9 if "[hang]" in text else len(text)
            for i in range(n):
                if stop_check_fn():
                    stopped = True
                    break
                if "[hang]" not in text:
                    t = torch.arange(3200) / 24000.0
                    chunk = 0.5 * torch.sin(2 * math.pi * 220 * t)
                    audio_streamer.put(chunk[None, :], torch.tensor([0]))
                if "[boom]" in text and i == 0:
                    raise RuntimeError("CUDA error: device-side assert triggered")
                time.sleep(CHUNK_DELAY_S)
        finally:
            with _lock:
                self._busy = False
            TRACE.append((self.index, text, start, time.monotonic(), stopped))
            audio_streamer.end()
'''


def install(root: Path) -> Path:
    """Writes the package under `root` and returns the directory to put on sys.path."""
    pkg = root / "vibevoice"
    (pkg / "modular").mkdir(parents=True)
    (pkg / "processor").mkdir()
    for init in (pkg, pkg / "modular", pkg / "processor"):
        (init / "__init__.py").write_text("")
    (pkg / "modular" / "streamer.py").write_text(_STREAMER)
    (pkg / "modular" / "modeling_vibevoice_streaming_inference.py").write_text(_MODEL)
    (pkg / "processor" / "vibevoice_streaming_processor.py").write_text(_PROCESSOR)
    return root


def unload() -> None:
    for name in [m for m in sys.modules if m == "vibevoice" or m.startswith("vibevoice.")]:
        del sys.modules[name]


def write_preset(path: Path, value: float = 0.0) -> Path:
    """A voice preset of plain tensors (loadable with weights_only), keyed like upstream presets."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    preset = {name: {"last_hidden_state": torch.full((1, 4, 8), value)}
              for name in ("lm", "tts_lm", "neg_lm", "neg_tts_lm")}
    torch.save(preset, path)
    return path


def write_model_dir(root: Path) -> dict[str, str]:
    """A model directory (config.json only: the stand-in needs no weights) and a voices dir, as options."""
    model = root / "VibeVoice-Realtime-0.5B"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "vibevoice_streaming"}')
    voices = root / "voices"
    write_preset(voices / "kr-Spk0_woman.pt", 0.0)
    write_preset(voices / "experimental_voices" / "kr" / "kr-Spk1_man.pt", 1.0)
    return {"model_path": str(model), "voices_dir": str(voices), "device": "cpu"}
