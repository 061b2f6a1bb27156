"""The cost of one call in ₩ (docs/analytics.md, "Cost"): LLM tokens, ASR and TTS audio, GPU time, the line.

Tokens come from the provider's stream usage, stored with each agent turn as `detail.llm_usage`
{prompt_tokens, completion_tokens} (or a `llm_usage` call event). ASR seconds are the caller's utterance audio,
TTS seconds what the caller heard. GPU seconds: the ASR engine's processing time when a GPU engine decoded, plus
TTS audio × `tts_gpu_rtf` when the TTS engine is a GPU engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent.analytics.settings import AnalyticsSettings

Row = Mapping[str, Any]
NO_ENGINE = "text-injected"  # a transcript typed in by a test or demo caller: no recogniser ran


@dataclass
class CallCost:
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    asr_engine: str = ""
    asr_seconds: float = 0.0
    tts_engine: str = ""
    tts_seconds: float = 0.0
    gpu_seconds: float = 0.0
    llm_krw: float = 0.0
    asr_krw: float = 0.0
    tts_krw: float = 0.0
    gpu_krw: float = 0.0
    telephony_krw: float = 0.0
    total_krw: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _usage(rows: Sequence[Row]) -> tuple[int, int]:
    prompt = completion = 0
    for row in rows:
        usage = (row.get("detail") or {}).get("llm_usage")
        if isinstance(usage, Mapping):
            prompt += int(usage.get("prompt_tokens") or 0)
            completion += int(usage.get("completion_tokens") or 0)
    return prompt, completion


def call_cost(turns: Sequence[Row], duration_s: float, tts_seconds: float, settings: AnalyticsSettings,
              tts_engine: str, events: Sequence[Row] = ()) -> CallCost:
    from agent.analytics.model import caller_speech_s  # the same audio seconds the speaker ratio uses

    p = settings.prices
    c = CallCost(tts_engine=tts_engine, tts_seconds=round(tts_seconds, 3))
    tp, tc = _usage([t for t in turns if t["speaker"] == "agent"])
    ep, ec = _usage([{"detail": e.get("detail")} for e in events if e.get("kind") == "llm_usage"])
    c.llm_prompt_tokens, c.llm_completion_tokens = tp + ep, tc + ec

    engines: Counter[str] = Counter()
    asr_gpu_s = 0.0
    for t in turns:
        if t["speaker"] != "caller" or not t.get("engine") or t["engine"] == NO_ENGINE:
            continue
        seconds = caller_speech_s(t)
        engines[t["engine"]] += 1
        c.asr_seconds += seconds
        c.asr_krw += seconds / 60 * p.asr_per_minute.get(t["engine"], 0.0)
        if t["engine"] in settings.gpu_engines and t.get("asr_ms") is not None:
            asr_gpu_s += float(t["asr_ms"]) / 1000
    c.asr_engine = engines.most_common(1)[0][0] if engines else ""
    c.asr_seconds = round(c.asr_seconds, 3)
    tts_gpu_s = tts_seconds * settings.tts_gpu_rtf if tts_engine in settings.gpu_engines else 0.0
    c.gpu_seconds = round(asr_gpu_s + tts_gpu_s, 3)

    c.llm_krw = c.llm_prompt_tokens / 1000 * p.llm_prompt_per_1k_tokens + \
        c.llm_completion_tokens / 1000 * p.llm_completion_per_1k_tokens
    c.tts_krw = tts_seconds / 60 * p.tts_per_minute.get(tts_engine, 0.0)
    c.gpu_krw = c.gpu_seconds / 3600 * p.gpu_per_hour
    c.telephony_krw = duration_s / 60 * p.telephony_per_minute
    for name in ("llm_krw", "asr_krw", "tts_krw", "gpu_krw", "telephony_krw"):
        setattr(c, name, round(getattr(c, name), 2))
    c.total_krw = round(c.llm_krw + c.asr_krw + c.tts_krw + c.gpu_krw + c.telephony_krw, 2)
    return c
