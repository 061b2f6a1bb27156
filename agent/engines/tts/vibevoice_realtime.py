"""`vibevoice-realtime`: VibeVoice-Realtime-0.5B streaming TTS in-process, through the user's installed
`vibevoice` package (microsoft/VibeVoice from source; not on PyPI, not in transformers).

Each sentence is one `generate()` on one pooled model instance, starting from a deep copy of the voice's
cached prompt; 24 kHz float chunks (3200 samples, 133 ms) are yielded as int16 as soon as they exist.
A sentence under three words ("네.") joins the next one (upstream calls generation that short unstable), and
a sentence's audio is capped by its length, so a missed end signal cannot stream minutes of noise.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config_reader import ConfigError, Section
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.loading import require_model_files
from agent.engines.tts.base import AudioChunk
from agent.engines.tts.pool import FairPool

log = logging.getLogger(__name__)

NAME = "vibevoice-realtime"
SAMPLE_RATE = 24000
KOREAN_VOICES = ("kr-Spk0_woman", "kr-Spk1_man")  # experimental upstream: validate by listening
_VOICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Sentence ends, so a long reply gives up its instance between sentences (pool fairness).
_SENTENCE_RE = re.compile(r"(?<=[.!?。？！])\s+")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_END = object()
MIN_WORDS = 3


@dataclass(frozen=True)
class RealtimeTtsOptions:
    model_path: str
    voices_dir: str
    voices: tuple[str, ...] = KOREAN_VOICES
    default_voice: str = KOREAN_VOICES[0]
    device: str = "cuda"
    dtype: str = "auto"  # bfloat16 on cuda, float32 on cpu (what upstream tests)
    pool_size: int = 1  # model instances in this process, one stream each
    cfg_scale: float = 1.5
    ddpm_steps: int = 5
    queue_timeout_s: float = 5.0  # wait for a free instance
    chunk_timeout_s: float = 5.0  # longest gap between two chunks before the stream is abandoned
    # Upstream presets are pickled model outputs that weights_only loading cannot read; they are loaded
    # with full unpickling only from voices_dir, and only while this is true.
    allow_pickle_presets: bool = True
    # auto: flash_attention_2 on cuda when flash-attn is installed (the only one upstream fully tested),
    # else sdpa.
    attn_implementation: str = "auto"
    # Audio cap per sentence: base + per character, never over max_sentence_s (Korean speech is ~0.15 s/char).
    cap_base_s: float = 2.0
    cap_s_per_char: float = 0.4
    max_sentence_s: float = 30.0


def parse_options(options: Mapping[str, Any], key: str) -> RealtimeTtsOptions:
    s = Section(options, key)
    d = RealtimeTtsOptions(model_path="", voices_dir="")
    voices = s.str_list("voices", d.voices)
    for voice in voices:
        if not _VOICE_NAME_RE.match(voice):
            raise ConfigError(s.key("voices"), f"voice {voice!r} must be a plain preset name")
    default_voice = s.str("default_voice", voices[0] if voices else d.default_voice)
    if default_voice not in voices:
        raise ConfigError(s.key("default_voice"), f"{default_voice!r} is not in voices")
    opts = RealtimeTtsOptions(
        model_path=s.str("model_path"),
        voices_dir=s.str("voices_dir"),
        voices=voices,
        default_voice=default_voice,
        device=s.choice("device", ("cuda", "cpu"), d.device),
        dtype=s.choice("dtype", ("auto", "bfloat16", "float32"), d.dtype),
        pool_size=s.int("pool_size", d.pool_size, lo=1, hi=16),
        cfg_scale=s.float("cfg_scale", d.cfg_scale, lo=1.0, hi=5.0),
        ddpm_steps=s.int("ddpm_steps", d.ddpm_steps, lo=1, hi=50),
        queue_timeout_s=s.float("queue_timeout_s", d.queue_timeout_s, lo=0.1, hi=120),
        chunk_timeout_s=s.float("chunk_timeout_s", d.chunk_timeout_s, lo=0.1, hi=120),
        allow_pickle_presets=s.bool("allow_pickle_presets", d.allow_pickle_presets),
        attn_implementation=s.choice("attn_implementation", ("auto", "flash_attention_2", "sdpa", "eager"),
                                     d.attn_implementation),
        cap_base_s=s.float("cap_base_s", d.cap_base_s, lo=0.5, hi=30),
        cap_s_per_char=s.float("cap_s_per_char", d.cap_s_per_char, lo=0.05, hi=5),
        max_sentence_s=s.float("max_sentence_s", d.max_sentence_s, lo=1, hi=600),
    )
    s.done()
    return opts


class UnsafePreset(ValueError):
    """A voice name or preset file that must not be loaded."""


def resolve_preset(voices_dir: str | Path, name: str) -> Path:
    """`<voices_dir>/**/<name>.pt`, refusing names with separators, files (or symlinks) outside the
    directory and world-writable files: a preset is a pickle, so whoever can write it can run code here."""
    if not _VOICE_NAME_RE.match(name) or ".." in name:
        raise UnsafePreset(f"voice name {name!r} is not a plain preset name")
    root = Path(voices_dir).resolve(strict=True)
    for candidate in sorted(root.rglob(f"{name}.pt")):
        real = candidate.resolve()
        if not real.is_relative_to(root):
            raise UnsafePreset(f"preset {candidate} points outside {root}")
        if real.stat().st_mode & 0o002:
            raise UnsafePreset(f"preset {real} is world-writable")
        if real.is_file():
            return real
    raise FileNotFoundError(f"no preset {name}.pt under {root}")


def load_preset(path: Path, device: str, *, allow_pickle: bool) -> Any:
    """weights_only loading first; upstream presets (ModelOutput + DynamicCache) need full unpickling."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        if not allow_pickle:
            raise UnsafePreset(f"{path.name} needs full unpickling and allow_pickle_presets is false") from None
    log.info("loading voice preset %s with full unpickling (trusted voices_dir)", path.name)
    preset = torch.load(path, map_location=device, weights_only=False)
    rebuilt = upgrade_legacy_caches(preset)
    if rebuilt:
        log.info("voice preset %s: %d KV caches pickled by transformers 4.x rebuilt for this version",
                 path.name, rebuilt)
    return preset


def upgrade_legacy_caches(obj: Any) -> int:
    """Rebuilds, in place, every transformers 4.x `DynamicCache` found in a loaded preset; returns how many.

    Upstream pickles its presets under transformers 4.51, whose DynamicCache state is `_seen_tokens`,
    `key_cache` and `value_cache` lists. Unpickled under 5.x (layers in `DynamicCache.layers`), the same class
    gets that old state and no layers: generation from it fails or sees an empty prompt. The object is
    rebuilt in place, so the model output that holds it (as `cache` or `past_key_values`) needs no change; a
    cache already in the current format is left as it is.
    """
    if isinstance(obj, Mapping):
        return sum(upgrade_legacy_caches(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(upgrade_legacy_caches(v) for v in obj)
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict) or "layers" in state or "key_cache" not in state:
        return 0
    from transformers.cache_utils import DynamicCache

    if not isinstance(obj, DynamicCache):
        return 0
    keys, values = list(state["key_cache"]), list(state["value_cache"])
    if len(keys) != len(values):
        raise ValueError(f"legacy KV cache has {len(keys)} key and {len(values)} value layers")
    # 4.x pads a layer it skipped with an empty tensor; 5.x takes None for "no data in this layer".
    data = [(k, v) if k.numel() and v.numel() else (None, None) for k, v in zip(keys, values, strict=True)]
    fresh = DynamicCache(ddp_cache_data=data) if data else DynamicCache()
    seen = state.get("_seen_tokens")
    if isinstance(seen, int) and data and seen != fresh.get_seq_length():
        # 5.x derives the length from the tensors; a mismatch means a cropped or damaged cache.
        raise ValueError(f"legacy KV cache says {seen} tokens seen but holds {fresh.get_seq_length()}")
    state.clear()
    state.update(fresh.__dict__)
    return 1


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.split(text.translate(_QUOTES)) if s.strip()]


def merge_short(sentences: list[str], min_words: int = MIN_WORDS) -> list[str]:
    """Joins a sentence of fewer than `min_words` words to the next one (the last to the one before)."""
    out: list[str] = []
    carry = ""
    for sentence in sentences:
        sentence = f"{carry} {sentence}".strip() if carry else sentence
        carry = ""
        if len(sentence.split()) < min_words:
            carry = sentence
        else:
            out.append(sentence)
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out


def audio_cap_s(sentence: str, options: RealtimeTtsOptions) -> float:
    return min(options.max_sentence_s, options.cap_base_s + options.cap_s_per_char * len(sentence))


def to_pcm16(chunk: Any) -> np.ndarray:
    """A float chunk (tensor or array, any shape) → int16; peak-normalised if it overshoots ±1."""
    if hasattr(chunk, "detach"):
        chunk = chunk.detach().float().cpu().numpy()
    audio = np.asarray(chunk, dtype=np.float32).reshape(-1)
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0:
        audio = audio / peak
    return (audio * 32767.0).astype(np.int16)


@dataclass
class _Instance:
    index: int
    model: Any


class VibeVoiceRealtimeTts:
    """Thread-safe; concurrency is the pool size. `synthesize(..., call_id=)` keeps the pool fair per call."""

    name = NAME

    def __init__(self, options: RealtimeTtsOptions, *, processor: Any, models: list[Any],
                 presets: Mapping[str, Any], streamer_cls: Any):
        self.options = options
        self._processor = processor
        self._presets = dict(presets)
        self._streamer_cls = streamer_cls
        self.pool: FairPool[_Instance] = FairPool([_Instance(i, m) for i, m in enumerate(models)], name=NAME)
        self._warned_voices: set[str] = set()
        self.capped = 0  # sentences cut at their audio cap
        # An English preset among the voices ("en-Carter_man") speaks to English callers (Speaker reads this).
        english = next((v for v in self._presets if v.startswith("en-")), None)
        self.language_voices = {"en": english} if english else {}

    def synthesize(self, text: str, voice: str, *, call_id: str = "") -> Iterator[AudioChunk]:
        preset = self._preset(voice)
        for sentence in merge_short(split_sentences(text)):
            cap = int(audio_cap_s(sentence, self.options) * SAMPLE_RATE)
            samples = 0
            with self.pool.lease(call_id, self.options.queue_timeout_s) as instance:
                stream = self._stream(instance, sentence, preset)
                try:
                    for chunk in stream:
                        pcm = to_pcm16(chunk)
                        if samples + len(pcm) > cap:
                            log.warning("vibevoice-realtime: %d-character sentence reached its %.1f s audio cap; "
                                        "cut", len(sentence), cap / SAMPLE_RATE)
                            self.capped += 1
                            break
                        samples += len(pcm)
                        yield AudioChunk(pcm=pcm, sample_rate=SAMPLE_RATE)
                finally:
                    stream.close()  # stops generate() before the instance goes back to the pool

    def _preset(self, voice: str) -> Any:
        if voice in self._presets:
            return self._presets[voice]
        if voice not in self._warned_voices:
            self._warned_voices.add(voice)
            log.warning("voice %r has no VibeVoice preset; using %r", voice, self.options.default_voice)
        return self._presets[self.options.default_voice]

    def _stream(self, instance: _Instance, text: str, preset: Any) -> Iterator[Any]:
        """Runs generate() on its own thread and relays chunks with a bounded wait for each one."""
        proc = self._processor
        inputs = proc.process_input_with_cached_prompt(text=text, cached_prompt=preset, padding=True,
                                                       return_tensors="pt", return_attention_mask=True)
        device = self.options.device
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        streamer = self._streamer_cls(batch_size=1)
        stop = threading.Event()  # barge-in or timeout: generate() polls it through stop_check_fn
        relay: queue.Queue[Any] = queue.Queue()
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                instance.model.generate(
                    **inputs, max_new_tokens=None, cfg_scale=self.options.cfg_scale, tokenizer=proc.tokenizer,
                    generation_config={"do_sample": False}, audio_streamer=streamer, stop_check_fn=stop.is_set,
                    refresh_negative=True, all_prefilled_outputs=copy.deepcopy(preset), verbose=False)
            except BaseException as exc:  # reported to the consumer below, never lost on this thread
                failure.append(exc)
            finally:
                streamer.end()  # so the relay's get_stream ends even when generate() failed

        def forward() -> None:
            try:
                for chunk in streamer.get_stream(0):
                    relay.put(chunk)
            finally:
                relay.put(_END)

        threads = [threading.Thread(target=generate, name=f"{NAME}-gen{instance.index}", daemon=True),
                   threading.Thread(target=forward, name=f"{NAME}-relay{instance.index}", daemon=True)]
        for t in threads:
            t.start()
        try:
            while True:
                try:
                    item = relay.get(timeout=self.options.chunk_timeout_s)
                except queue.Empty:
                    raise EngineError(NAME, f"no audio for {self.options.chunk_timeout_s:.1f} s",
                                      retryable=True) from None
                if item is _END:
                    break
                yield item
            if failure:
                raise EngineError(NAME, f"generation failed: {type(failure[0]).__name__}: {failure[0]}",
                                  retryable=False) from failure[0]
        finally:
            stop.set()
            # The instance goes back to the pool only once its generate() has really stopped.
            for t in threads:
                t.join(timeout=self.options.chunk_timeout_s)
            if threads[0].is_alive():
                log.error("vibevoice-realtime instance %d did not stop; it stays busy", instance.index)

    def close(self) -> None:
        self._presets.clear()


def _import_vibevoice() -> tuple[Any, Any, Any]:
    try:
        from vibevoice.modular.modeling_vibevoice_streaming_inference import (
            VibeVoiceStreamingForConditionalGenerationInference as model_cls,
        )
        from vibevoice.modular.streamer import AudioStreamer
        from vibevoice.processor.vibevoice_streaming_processor import VibeVoiceStreamingProcessor
    except ImportError as exc:
        raise EngineUnavailable(NAME, (
            "the VibeVoice-Realtime code is not installed: install microsoft/VibeVoice from source "
            f"(pip install -e '.[streamingtts]') in the TTS worker's environment ({exc})")) from exc
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        # transformers 5.x ships its own "vibevoice" config, so upstream's AutoConfig.register("vibevoice")
        # raises ValueError at import: an engine that cannot start here, not a crash.
        raise EngineUnavailable(NAME, (
            f"the vibevoice package does not import under transformers {_transformers_version()} "
            f"({type(exc).__name__}: {exc}); use the transformers version the package pins (4.x)")) from exc
    return model_cls, VibeVoiceStreamingProcessor, AudioStreamer


def _transformers_version() -> str:
    try:
        import transformers
    except ImportError:
        return "(not installed)"
    return str(getattr(transformers, "__version__", "?"))


def create(options: Mapping[str, Any], key: str) -> VibeVoiceRealtimeTts:
    """Loads presets, processor and `pool_size` model instances; EngineUnavailable (→ espeak) when the
    package, torch, the model, the presets or CUDA are missing."""
    opts = parse_options(options, key)
    try:
        import torch
    except ImportError as exc:
        raise EngineUnavailable(NAME, f"needs torch: {exc}") from exc
    model_path = Path(opts.model_path)
    require_model_files(NAME, model_path, opts.device, torch)
    model_cls, processor_cls, streamer_cls = _import_vibevoice()
    presets: dict[str, Any] = {}
    for voice in opts.voices:
        try:
            path = resolve_preset(opts.voices_dir, voice)
            presets[voice] = load_preset(path, opts.device, allow_pickle=opts.allow_pickle_presets)
        except (OSError, UnsafePreset) as exc:
            raise EngineUnavailable(NAME, f"voice {voice!r}: {exc}") from exc
    dtype = torch.bfloat16 if opts.dtype == "auto" and opts.device == "cuda" else getattr(
        torch, "float32" if opts.dtype == "auto" else opts.dtype)
    attn = opts.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if opts.device == "cuda" and importlib.util.find_spec("flash_attn") else "sdpa"
    started = time.monotonic()
    try:
        processor = processor_cls.from_pretrained(str(model_path))
        models = []
        for _ in range(opts.pool_size):
            model = model_cls.from_pretrained(str(model_path), torch_dtype=dtype, device_map=opts.device,
                                              attn_implementation=attn)
            model.eval()
            model.set_ddpm_inference_steps(num_steps=opts.ddpm_steps)
            models.append(model)
    except (OSError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise EngineUnavailable(NAME, f"model did not load under transformers {_transformers_version()} "
                                      f"({type(exc).__name__}: {exc})") from exc
    log.info("vibevoice-realtime: %d instance(s) of %s on %s in %.1f s", opts.pool_size, model_path,
             opts.device, time.monotonic() - started)
    return VibeVoiceRealtimeTts(opts, processor=processor, models=models, presets=presets,
                                streamer_cls=streamer_cls)
