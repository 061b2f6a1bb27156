"""How many calls one GPU carries: `python -m agent.ops.gpu_capacity [--dry-run]`.

ASR: the VibeVoice-ASR architecture (transformers' native classes; the checkpoint's weights with
`--asr-weights`, random initialisation otherwise: the report says which; speed does not depend on the values)
is timed per generate() at several batch sizes. N simulated calls then each end an utterance every
`--turn-period-s` seconds (random phase, seeded), and a batching server (what vLLM's continuous batching does at
best) serves them with the measured times; a call level is carried when the p95 transcript latency stays under the
seed plan's §5-3 threshold (500 ms). TTS: VibeVoice-Realtime (needs the `vibevoice` package and `--tts-model-path`)
runs c streams at once; c is carried while the p95 first chunk stays under 500 ms and every stream is faster than
real time, and calls = c / the agent's share of talk time. GPU memory is the peak allocated.

`--dry-run` checks the whole script on a CPU with a tiny random ASR model in seconds (numbers meaningless).
On one H100/H200 the default run takes under 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ASR_THRESHOLD_MS = 500.0  # seed §5-3: ASR 인식 지연시간 > 500ms is a warning
TTS_FIRST_CHUNK_THRESHOLD_MS = 500.0  # seed §5-3: TTS 첫 청크 지연 > 500ms
QUANTILE = 0.95


# pure core: a batching server fed by simulated calls ------------------------------------------------------


def interpolate(measured: dict[int, float]) -> Callable[[int], float]:
    """Service ms for any batch size from the measured ones (linear between, linear beyond the largest)."""
    sizes = sorted(measured)

    def service_ms(batch: int) -> float:
        if batch <= sizes[0]:
            return measured[sizes[0]]
        for lo, hi in zip(sizes, sizes[1:], strict=False):
            if batch <= hi:
                return measured[lo] + (measured[hi] - measured[lo]) * (batch - lo) / (hi - lo)
        if len(sizes) == 1:
            return measured[sizes[0]] * batch
        lo, hi = sizes[-2], sizes[-1]
        return measured[hi] + (measured[hi] - measured[lo]) * (batch - hi) / (hi - lo)

    return service_ms


def arrivals(calls: int, period_s: float, window_s: float, seed: int = 0) -> list[float]:
    """End-of-utterance times (s) of `calls` callers, each every period ±20 %, random phase."""
    rng = random.Random(seed)
    out: list[float] = []
    for _ in range(calls):
        t = rng.uniform(0, period_s)
        while t < window_s:
            out.append(t)
            t += period_s * rng.uniform(0.8, 1.2)
    return sorted(out)


def simulate_batching(times: Sequence[float], service_ms: Callable[[int], float], max_batch: int) -> list[float]:
    """Latency (ms) of each request: a free server takes every waiting request (up to max_batch) at once."""
    latencies: list[float] = []
    free_at = 0.0
    i = 0
    while i < len(times):
        start = max(free_at, times[i])
        batch = [t for t in times[i:i + max_batch] if t <= start] or [times[i]]
        done = start + service_ms(len(batch)) / 1000.0
        latencies += [(done - t) * 1000.0 for t in batch]
        free_at = done
        i += len(batch)
    return latencies


def quantile(values: Sequence[float], q: float = QUANTILE) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def asr_capacity(measured: dict[int, float], levels: Sequence[int], period_s: float, window_s: float,
                 max_batch: int, threshold_ms: float = ASR_THRESHOLD_MS) -> tuple[int, list[dict[str, float]]]:
    """(largest call count whose p95 stays under the threshold, one row per level)."""
    service = interpolate(measured)
    rows, carried = [], 0
    for n in levels:
        lat = simulate_batching(arrivals(n, period_s, window_s, seed=n), service, max_batch)
        p95 = quantile(lat)
        rows.append({"calls": n, "requests": len(lat), "p95_ms": round(p95, 1), "max_ms": round(max(lat), 1)})
        if p95 <= threshold_ms:
            carried = max(carried, n)
    return carried, rows


# measurements ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    device: str
    gpu: str
    dry_run: bool
    asr: dict[str, Any] = field(default_factory=dict)
    tts: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        a, t = self.asr, self.tts
        lines = [f"GPU: {self.gpu} ({'dry run: tiny random model, numbers meaningless' if self.dry_run else 'run'})",
                 "", f"ASR: {a.get('weights')}, {a.get('params', 0) / 1e9:.2f} B parameters, "
                 f"peak {a.get('peak_gib')} GiB, RTF {a.get('rtf')} (one {a.get('utterance_s')} s utterance)",
                 "", "| batch | ms per generate() |", "|---:|---:|"]
        lines += [f"| {b} | {ms} |" for b, ms in a.get("batch_ms", {}).items()]
        lines += ["", "| calls | transcripts | p95 ms | max ms |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['calls']} | {r['requests']} | {r['p95_ms']} | {r['max_ms']} |" for r in a.get("levels", [])]
        lines += ["", f"ASR carries **{a.get('calls_carried')} calls** per GPU at p95 ≤ {ASR_THRESHOLD_MS:.0f} ms."]
        if t.get("skipped"):
            lines += ["", f"TTS: skipped ({t['skipped']})."]
        elif t:
            lines += ["", f"TTS: {t.get('weights')}; carries {t.get('streams_carried')} streams = "
                      f"**{t.get('calls_carried')} calls** (agent talks {t.get('talk_share')} of the time)."]
        return "\n".join(lines)


def _gpu_name(device: str) -> str:
    if device != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)


def measure_asr(device: str, batches: Sequence[int], utterance_s: float, new_tokens: int, tiny: bool,
                weights: str | None) -> dict[str, Any]:
    import torch
    from transformers import VibeVoiceAsrForConditionalGeneration

    from agent.engines.vibevoice_timing import _asr_config, _asr_inputs, _peak_gib, _sync

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    if weights:
        model = VibeVoiceAsrForConditionalGeneration.from_pretrained(weights, torch_dtype=dtype).to(device).eval()
        config, source = model.config, f"real weights from {weights}"
    else:
        config = _asr_config(tiny, None)
        with torch.device(device):
            default = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            try:
                model = VibeVoiceAsrForConditionalGeneration(config).eval()
            finally:
                torch.set_default_dtype(default)
        source = "random initialisation (tiny config)" if tiny else "random initialisation (full architecture)"
    kwargs = {"do_sample": False, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "pad_token_id": 0}
    batch_ms: dict[int, float] = {}
    with torch.inference_mode():
        for batch in batches:
            inputs = _asr_inputs(config, batch, utterance_s, device, dtype)
            model.generate(**inputs, **kwargs)  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            model.generate(**inputs, **kwargs)
            _sync(device)
            batch_ms[batch] = round((time.perf_counter() - t0) * 1000, 1)
            print(json.dumps({"asr_batch": batch, "ms": batch_ms[batch]}), flush=True)
    return {"weights": source, "params": sum(p.numel() for p in model.parameters()), "utterance_s": utterance_s,
            "new_tokens": new_tokens, "batch_ms": batch_ms, "peak_gib": _peak_gib(device),
            "rtf": round(batch_ms[min(batch_ms)] / 1000 / utterance_s, 3)}


def measure_tts(model_path: str, voices_dir: str, voice: str, device: str, streams: Sequence[int], chunks: int,
                talk_share: float, text: str) -> dict[str, Any]:
    """c synthesize() streams at once per level: p95 first chunk and the slowest stream's RTF."""
    from agent.engines.tts import vibevoice_realtime as rt

    engine = rt.create({"model_path": model_path, "voices_dir": voices_dir, "voices": [voice], "device": device,
                        "pool_size": max(streams)}, "capacity")
    rows, carried = [], 0
    try:
        for c in streams:
            firsts: list[float] = []
            rtfs: list[float] = []

            def one(firsts: list[float] = firsts, rtfs: list[float] = rtfs) -> None:
                t0 = time.perf_counter()
                first, audio = None, 0.0
                stream = engine.synthesize(text, voice)
                try:
                    for i, chunk in enumerate(stream):
                        first = first if first is not None else (time.perf_counter() - t0) * 1000
                        audio += chunk.duration_s
                        if i + 1 >= chunks:
                            break
                finally:
                    stream.close()
                firsts.append(first or 0.0)
                rtfs.append((time.perf_counter() - t0) / audio if audio else float("inf"))

            threads = [threading.Thread(target=one) for _ in range(c)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            row = {"streams": c, "first_chunk_p95_ms": round(quantile(firsts), 1), "worst_rtf": round(max(rtfs), 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if row["first_chunk_p95_ms"] <= TTS_FIRST_CHUNK_THRESHOLD_MS and row["worst_rtf"] < 1:
                carried = max(carried, c)
    finally:
        engine.close()
    return {"weights": f"checkpoint {model_path}",
            "levels": rows, "streams_carried": carried, "talk_share": talk_share,
            "calls_carried": int(carried / talk_share)}


def main(argv: list[str] | None = None) -> Report:
    p = argparse.ArgumentParser(prog="python -m agent.ops.gpu_capacity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny random model: checks the script only")
    p.add_argument("--asr-weights", help="VibeVoice-ASR-HF checkpoint directory (random weights without it)")
    p.add_argument("--batches", default="1,4,8,16,32,64")
    p.add_argument("--levels", default="4,8,16,32,48,64,96,128,160,200", help="simulated concurrent calls")
    p.add_argument("--utterance-s", type=float, default=3.0)
    p.add_argument("--new-tokens", type=int, default=48, help="answer length of a short Korean utterance's JSON")
    p.add_argument("--turn-period-s", type=float, default=8.0, help="a caller ends an utterance this often")
    p.add_argument("--window-s", type=float, default=300.0, help="simulated time per level")
    p.add_argument("--max-batch", type=int, default=64, help="vLLM --max-num-seqs")
    p.add_argument("--tts-model-path")
    p.add_argument("--voices-dir")
    p.add_argument("--voice", default="kr-Spk0_woman")
    p.add_argument("--tts-streams", default="1,2,4,8,12,16", help="at most 16 (one model instance per stream)")
    p.add_argument("--tts-chunks", type=int, default=20)
    p.add_argument("--talk-share", type=float, default=0.4, help="share of a call the agent is speaking")
    p.add_argument("--out", help="write the report as JSON here")
    args = p.parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        batches, levels, window = [1, 2], [1, 2, 4], 30.0
        utterance_s, new_tokens = 1.0, 2
    else:
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA GPU here; --dry-run checks the script on a CPU")
        batches = [int(x) for x in args.batches.split(",")]
        levels = [int(x) for x in args.levels.split(",")]
        window, utterance_s, new_tokens = args.window_s, args.utterance_s, args.new_tokens
    report = Report(device=device, gpu=_gpu_name(device), dry_run=args.dry_run)
    report.asr = measure_asr(device, batches, utterance_s, new_tokens, tiny=args.dry_run, weights=args.asr_weights)
    carried, rows = asr_capacity(report.asr["batch_ms"], levels, args.turn_period_s, window, args.max_batch)
    report.asr.update(calls_carried=carried, levels=rows, turn_period_s=args.turn_period_s)
    if args.tts_model_path and args.voices_dir:
        report.tts = measure_tts(args.tts_model_path, args.voices_dir, args.voice, device,
                                 [int(x) for x in args.tts_streams.split(",")], args.tts_chunks, args.talk_share,
                                 "네, 고객님. 주문하신 상품은 오늘 오후에 도착할 예정입니다.")
    else:
        report.tts = {"skipped": "no --tts-model-path/--voices-dir (VibeVoice-Realtime needs the vibevoice package)"}
    print(report.markdown())
    if args.out:
        Path(args.out).write_text(json.dumps(asdict(report), indent=2, default=str))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
