"""GPU timings for the VibeVoice engines: `python -m agent.engines.vibevoice_timing --help` (docs/models.md).

ASR: the full-size VibeVoice-ASR architecture (transformers' native classes) with random weights; ms per
generate() for 3 s and 10 s utterances at batch 1/8/32 with a fixed answer length. TTS: VibeVoice-Realtime
through our engine (first-chunk ms, real-time factor), from the user's checkpoint directory.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

SAMPLE_RATE = 24000
HOP = 3200  # samples per audio token


def _asr_config(tiny: bool, config_path: str | None) -> Any:
    from transformers import Qwen2Config, VibeVoiceAcousticTokenizerEncoderConfig, VibeVoiceAsrConfig

    if config_path:  # the checkpoint's own config.json: exact architecture, no weights needed
        return VibeVoiceAsrConfig.from_pretrained(config_path)
    if not tiny:
        # Default encoders plus the Qwen2.5-7B decoder the checkpoint is built on.
        return VibeVoiceAsrConfig(text_config=Qwen2Config(
            hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
            num_key_value_heads=4, vocab_size=152064, rope_theta=1e6, max_position_embeddings=32768))
    encoder = {"hidden_size": 8, "num_filters": 4, "depths": [1] * 7}
    return VibeVoiceAsrConfig(
        acoustic_tokenizer_encoder_config=VibeVoiceAcousticTokenizerEncoderConfig(**encoder),
        semantic_tokenizer_encoder_config=VibeVoiceAcousticTokenizerEncoderConfig(**{**encoder, "hidden_size": 16}),
        text_config=Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=151936),
    )


def _asr_inputs(config: Any, batch: int, seconds: float, device: str, dtype: Any) -> dict[str, Any]:
    """Prompt-shaped ids (system + user text around the audio placeholders) and random audio."""
    import torch

    samples = math.ceil(seconds * SAMPLE_RATE / HOP) * HOP
    n_audio = samples // HOP
    text = torch.randint(0, 150000, (batch, 40), device=device)  # ~ the system prompt and the instruction
    audio = torch.full((batch, n_audio), config.audio_token_id, device=device)
    bos = torch.full((batch, 1), config.audio_bos_token_id, device=device)
    eos = torch.full((batch, 1), config.audio_eos_token_id, device=device)
    ids = torch.cat([text[:, :24], bos, audio, eos, text[:, 24:]], dim=1)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "input_values": (0.05 * torch.randn(batch, 1, samples, device=device)).to(dtype),
        "padding_mask": torch.ones(batch, samples, dtype=torch.int32, device=device),
    }


def time_asr(device: str, durations: list[float], batches: list[int], new_tokens: int, tiny: bool,
             repeats: int, config_path: str | None = None) -> list[dict[str, Any]]:
    import torch
    from transformers import VibeVoiceAsrForConditionalGeneration

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = _asr_config(tiny, config_path)
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.device(device):
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # build straight in bf16 on the GPU: fp32 9B would not fit in RAM
        try:
            model = VibeVoiceAsrForConditionalGeneration(config).eval()
        finally:
            torch.set_default_dtype(default)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for seconds in durations:
        for batch in batches:
            inputs = _asr_inputs(config, batch, seconds, device, dtype)
            kwargs = {"do_sample": False, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens,
                      "pad_token_id": 0}
            with torch.inference_mode():
                model.generate(**inputs, **kwargs)  # warm-up: kernels, allocator
                times, prefill = [], []
                for _ in range(repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    model.generate(**inputs, **{**kwargs, "max_new_tokens": 1, "min_new_tokens": 1})
                    _sync(device)
                    t1 = time.perf_counter()
                    model.generate(**inputs, **kwargs)
                    _sync(device)
                    prefill.append((t1 - t0) * 1000)
                    times.append((time.perf_counter() - t1) * 1000)
            rows.append({"model": "asr", "audio_s": seconds, "batch": batch, "new_tokens": new_tokens,
                         "first_token_ms": round(min(prefill), 1), "total_ms": round(min(times), 1),
                         "ms_per_utterance": round(min(times) / batch, 1), "params": params,
                         "build_s": round(build_s, 1), "peak_gib": _peak_gib(device)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def time_tts(model_path: str, voices_dir: str, voice: str, device: str, chunks: int, random_weights: bool,
             text: str) -> dict[str, Any]:
    """First-chunk latency and RTF of one utterance through VibeVoiceRealtimeTts (stops after `chunks`)."""
    from agent.engines.tts import vibevoice_realtime as rt

    options = {"model_path": model_path, "voices_dir": voices_dir, "voices": [voice], "device": device}
    if random_weights:
        import torch

        model_cls, processor_cls, streamer_cls = rt._import_vibevoice()
        opts = rt.parse_options(options, "bench")
        config = model_cls.config_class.from_pretrained(model_path)
        with torch.device(device):
            model = model_cls(config).to(torch.bfloat16 if device == "cuda" else torch.float32).eval()
        model.set_ddpm_inference_steps(num_steps=opts.ddpm_steps)
        preset = rt.load_preset(rt.resolve_preset(voices_dir, voice), device, allow_pickle=True)
        engine = rt.VibeVoiceRealtimeTts(opts, processor=processor_cls.from_pretrained(model_path), models=[model],
                                         presets={voice: preset}, streamer_cls=streamer_cls)
    else:
        engine = rt.create(options, "bench")
    list(_take(engine.synthesize(text, voice), 2))  # warm-up
    t0 = time.perf_counter()
    first_ms, audio_s = None, 0.0
    for chunk in _take(engine.synthesize(text, voice), chunks):
        if first_ms is None:
            first_ms = (time.perf_counter() - t0) * 1000
        audio_s += chunk.duration_s
    wall = time.perf_counter() - t0
    engine.close()
    row = {"model": "tts", "first_chunk_ms": round(first_ms or 0.0, 1), "audio_s": round(audio_s, 2),
           "wall_s": round(wall, 2), "rtf": round(wall / audio_s, 3) if audio_s else None,
           "random_weights": random_weights, "peak_gib": _peak_gib(device)}
    print(json.dumps(row), flush=True)
    return row


def _take(stream: Any, n: int) -> Any:
    try:
        for i, item in enumerate(stream):
            if i >= n:
                break
            yield item
    finally:
        stream.close()  # stops generation: random weights may never emit EOS


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _peak_gib(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m agent.engines.vibevoice_timing", description=__doc__)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--durations", default="3,10", help="utterance seconds, comma-separated")
    p.add_argument("--batches", default="1,8,32", help="ASR batch sizes, comma-separated")
    p.add_argument("--new-tokens", type=int, default=48, help="answer length (a short Korean utterance's JSON)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="a 2-layer model: checks the script on a CPU")
    p.add_argument("--asr-config", help="VibeVoice-ASR-HF directory or config.json (weights not read)")
    p.add_argument("--skip-asr", action="store_true")
    p.add_argument("--tts-model-path", help="VibeVoice-Realtime-0.5B directory (needs the vibevoice package)")
    p.add_argument("--voices-dir")
    p.add_argument("--voice", default="kr-Spk0_woman")
    p.add_argument("--tts-random-weights", action="store_true", help="build from config.json, skip the weights")
    p.add_argument("--tts-chunks", type=int, default=45, help="stop after this many 133 ms chunks")
    p.add_argument("--tts-text", default="네, 고객님. 주문하신 상품은 오늘 오후에 도착할 예정입니다.")
    p.add_argument("--out", help="write all rows to this JSON file")
    args = p.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA GPU here; use --device cpu --tiny to check the script itself")
    rows: list[dict[str, Any]] = []
    if not args.skip_asr:
        rows += time_asr(args.device, [float(x) for x in args.durations.split(",")],
                         [int(x) for x in args.batches.split(",")], args.new_tokens, args.tiny, args.repeats,
                         args.asr_config)
    if args.tts_model_path:
        if not args.voices_dir:
            p.error("--tts-model-path needs --voices-dir")
        rows.append(time_tts(args.tts_model_path, args.voices_dir, args.voice, args.device, args.tts_chunks,
                             args.tts_random_weights, args.tts_text))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
