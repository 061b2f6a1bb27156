"""`vibevoice-transformers`: VibeVoice-ASR in-process through transformers' native classes (>= 5.3).

Utterances from concurrent calls are micro-batched: one background thread owns the model, waits a short
gather window for company, and runs one `generate()` for up to `max_batch` utterances.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from agent.config_reader import Section
from agent.engines.asr import vibevoice_format as fmt
from agent.engines.asr.base import AsrContext, AsrResult
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.loading import require_model_files
from agent.media.resample import resample

log = logging.getLogger(__name__)

NAME = "vibevoice-transformers"
DEFAULT_MAX_BATCH = 8
DEFAULT_GATHER_MS = 15  # long enough to catch utterances ending together, short against turn latency
DEFAULT_MAX_NEW_TOKENS = 1024
DEFAULT_TIMEOUT_S = 10.0

I = TypeVar("I")  # noqa: E741 - the conventional name for "item"
O = TypeVar("O")  # noqa: E741


class MicroBatcher(Generic[I, O]):
    """Runs `run_batch(items) -> outputs` on one thread; `submit` returns a Future per item.

    The thread takes the first waiting item, then gathers more for `gather_s` or until `max_batch`.
    A failing batch fails every future in it; a cancelled future is dropped before the batch runs.
    """

    def __init__(self, run_batch: Callable[[list[I]], list[O]], *, max_batch: int, gather_s: float,
                 name: str = "microbatch"):
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.gather_s = gather_s
        self.batch_sizes: Counter[int] = Counter()  # batch size → how many ran (for metrics and tests)
        self._queue: queue.Queue[tuple[I, Future[O]] | None] = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: I) -> Future[O]:
        if self._closed.is_set():
            raise RuntimeError("batcher is closed")
        fut: Future[O] = Future()
        self._queue.put((item, fut))
        return fut

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _gather(self, first: tuple[I, Future[O]]) -> list[tuple[I, Future[O]]]:
        batch = [first]
        deadline = time.monotonic() + self.gather_s
        while len(batch) < self.max_batch:
            try:
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if entry is None:
                self._queue.put(None)  # keep the stop marker for the loop
                break
            batch.append(entry)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            live = [(item, fut) for item, fut in self._gather(first) if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            self.batch_sizes[len(live)] += 1
            try:
                outputs = self._run_batch([item for item, _ in live])
                if len(outputs) != len(live):
                    raise RuntimeError(f"batch of {len(live)} gave {len(outputs)} outputs")
            except BaseException as exc:  # delivered to every waiting caller, never lost on this thread
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            for (_, fut), out in zip(live, outputs, strict=True):
                fut.set_result(out)
        # Anyone still queued after close gets an answer instead of waiting out their timeout.
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not None and entry[1].set_running_or_notify_cancel():
                entry[1].set_exception(EngineError(NAME, "engine closed", retryable=True))


@dataclass(frozen=True)
class TransformersAsrOptions:
    model_path: str
    device: str = "cuda"
    dtype: str = "auto"  # auto: bfloat16 on cuda, float32 on cpu
    max_batch: int = DEFAULT_MAX_BATCH
    gather_ms: int = DEFAULT_GATHER_MS
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Applies to the Qwen2 decoder only (the audio encoders are convolutional); auto: sdpa where supported.
    attn_implementation: str = "auto"
    adapter: str = ""  # a PEFT LoRA adapter directory (callagent train asr-lora), merged into the weights at load


def parse_options(options: Mapping[str, Any], key: str) -> TransformersAsrOptions:
    s = Section(options, key)
    d = TransformersAsrOptions(model_path="")
    opts = TransformersAsrOptions(
        model_path=s.str("model_path"),
        device=s.choice("device", ("cuda", "cpu"), d.device),
        dtype=s.choice("dtype", ("auto", "bfloat16", "float16", "float32"), d.dtype),
        max_batch=s.int("max_batch", d.max_batch, lo=1, hi=128),
        gather_ms=s.int("gather_ms", d.gather_ms, lo=0, hi=500),
        max_new_tokens=s.int("max_new_tokens", d.max_new_tokens, lo=16, hi=32768),
        timeout_s=s.float("timeout_s", d.timeout_s, lo=0.5, hi=600),
        attn_implementation=s.choice("attn_implementation", ("auto", "sdpa", "eager", "flash_attention_2"),
                                     d.attn_implementation),
        adapter=s.str("adapter", d.adapter),
    )
    s.done()
    return opts


@dataclass(frozen=True)
class _Utterance:
    audio: np.ndarray  # float32 at 24 kHz
    context: str

    @property
    def duration_s(self) -> float:
        return len(self.audio) / fmt.SAMPLE_RATE


class VibeVoiceTransformersAsr:
    """Thread-safe: callers block on their own future; only the batcher thread touches the model."""

    name = NAME

    def __init__(self, model: Any, processor: Any, options: TransformersAsrOptions):
        self.options = options
        self._model = model
        self._processor = processor
        self._batcher: MicroBatcher[_Utterance, AsrResult] = MicroBatcher(
            self._run_batch, max_batch=options.max_batch, gather_s=options.gather_ms / 1000, name=NAME)

    @property
    def batch_sizes(self) -> Counter[int]:
        return self._batcher.batch_sizes

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"expected mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        if pcm.size == 0:
            return AsrResult(text="", engine=NAME)
        audio = resample(pcm.astype(np.float32) / 32768.0, sample_rate, fmt.SAMPLE_RATE)
        fut = self._batcher.submit(_Utterance(np.ascontiguousarray(audio, np.float32), context.prompt_text()))
        try:
            return fut.result(timeout=self.options.timeout_s)
        except FutureTimeout as exc:
            fut.cancel()  # still queued: drop it; already running: its result is simply ignored
            raise EngineError(NAME, f"no transcript within {self.options.timeout_s:.1f} s", retryable=True) from exc
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(NAME, f"inference failed: {type(exc).__name__}: {exc}", retryable=False) from exc

    def _run_batch(self, batch: list[_Utterance]) -> list[AsrResult]:
        import torch

        proc = self._processor
        inputs = build_inputs(proc, [u.audio for u in batch], [u.context for u in batch])
        inputs = inputs.to(self._model.device, dtype=self._model.dtype)
        budget = max(fmt.token_budget(u.duration_s, self.options.max_new_tokens) for u in batch)
        with torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=budget, do_sample=False,
                                       pad_token_id=proc.tokenizer.pad_token_id)
        # Prompts are left-padded, so every row's answer starts at the same column.
        answers = out[:, inputs["input_ids"].shape[1]:].cpu()
        return [
            fmt.to_result(fmt.parse_transcription(proc.decode(row, skip_special_tokens=True), u.duration_s), NAME)
            for row, u in zip(answers, batch, strict=True)
        ]

    def close(self) -> None:
        self._batcher.close()


def build_inputs(processor: Any, audios: list[np.ndarray], contexts: list[str]) -> Any:
    """Model inputs for a batch of 24 kHz float32 utterances, each with its own hotword context."""
    # The checkpoint's chat template writes the training-time wording; the processor fills in durations.
    prompts = processor.apply_transcription_request(audios, prompt=[c or None for c in contexts], tokenize=False)
    # Audio kwargs are passed explicitly: a loaded tokenizer's init kwargs otherwise override the
    # processor's pad_to_multiple_of with None (transformers 5.24).
    return processor(text=prompts, audio=audios,
                     audio_kwargs={"sampling_rate": fmt.SAMPLE_RATE, "pad_to_multiple_of": 3200})


def _torch_dtype(torch: Any, name: str, device: str) -> Any:
    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def create(options: Mapping[str, Any], key: str) -> VibeVoiceTransformersAsr:
    """Loads the model; EngineUnavailable (→ Vosk) when torch, transformers >= 5.3, the files or CUDA are missing."""
    opts = parse_options(options, key)
    try:
        import torch
        from transformers import VibeVoiceAsrForConditionalGeneration, VibeVoiceAsrProcessor
    except ImportError as exc:
        raise EngineUnavailable(NAME, f"needs torch and transformers>=5.3 with VibeVoice-ASR: {exc}") from exc
    path = Path(opts.model_path)
    require_model_files(NAME, path, opts.device, torch)
    attn = {} if opts.attn_implementation == "auto" else {
        "attn_implementation": {"text_config": opts.attn_implementation}}
    started = time.monotonic()
    try:
        processor = VibeVoiceAsrProcessor.from_pretrained(str(path), local_files_only=True)
        model = VibeVoiceAsrForConditionalGeneration.from_pretrained(
            str(path), dtype=_torch_dtype(torch, opts.dtype, opts.device),
            local_files_only=True, **attn,
        )
        if opts.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, opts.adapter, is_trainable=False).merge_and_unload()
        model = model.to(opts.device).eval()
    except (OSError, ValueError, ImportError) as exc:
        raise EngineUnavailable(NAME, f"cannot load {path}: {exc}") from exc
    log.info("vibevoice-transformers loaded %s on %s in %.1f s", path, opts.device, time.monotonic() - started)
    return VibeVoiceTransformersAsr(model, processor, opts)
