"""In-process counters of the controller, read by `callagent bench` and exported as Prometheus metrics.

Everything here is bounded: latencies go into fixed-bucket histograms (the buckets sit on the monitoring
thresholds, so an alert can ask "how many turns were over 500 ms"), and the raw samples that `callagent bench`
summarises are kept in rings of at most `SAMPLES_KEPT` values. Memory does not grow with uptime.

`observe(op)` reads the call store's operations (call_start / turn / call_end), so the call path keeps one
bookkeeping: what is written to PostgreSQL is what is counted.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.analytics.timing import voice_to_voice_ms

SAMPLES_KEPT = 10_000
# Seconds. 0.5 (ASR, TTS first chunk), 1 (LLM response) and 2 (caller speech end → reply) are alert thresholds.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
OVERHEAD_BUCKETS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
FIRST_AUDIO_BUCKETS_MS = (50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0)
QUALITY_BUCKETS = (20.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
COST_PARTS = ("llm", "asr", "tts", "gpu", "telephony")
# Calls whose start was seen but whose end was not (a crash): forget the oldest beyond this.
OPEN_CALLS_KEPT = 20_000
# How a stored call ended → the outcome label of callagent_calls_ended_total.
OUTCOMES = ("completed", "transferred", "abandoned", "failed")


class BoundedSamples(list):  # a list so `json.dumps` (bench stats files) keeps working
    """The newest `limit` values; trims in halves so an append stays O(1) amortised."""

    def __init__(self, values: Iterable[float] = (), limit: int = SAMPLES_KEPT):
        super().__init__(values)
        self.limit = limit

    def append(self, value: float) -> None:  # type: ignore[override]
        super().append(value)
        if len(self) > 2 * self.limit:
            del self[: len(self) - self.limit]

    def newest(self) -> list[float]:
        return self[-self.limit:]


@dataclass
class Histogram:
    """Cumulative-bucket histogram in the Prometheus sense: counts[i] = observations <= bounds[i]."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: int = 0
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1

    def buckets(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs ending with +Inf, as HistogramMetricFamily takes them."""
        return [(_le(b), float(n)) for b, n in zip(self.bounds, self.counts, strict=True)] + [
            ("+Inf", float(self.total))]


def _le(bound: float) -> str:
    return repr(float(bound))


# Histogram name → (help, bounds, unit). Seconds unless the name says ms.
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "asr_seconds": ("ASR time per caller utterance (final transcript)", LATENCY_BUCKETS_S),
    "tts_first_chunk_seconds": ("First speakable text to first audio chunk written", LATENCY_BUCKETS_S),
    "llm_response_seconds": ("Transcript in to first speakable text (dialog / LLM)", LATENCY_BUCKETS_S),
    "reply_seconds": ("Transcript in to PLAYBACK_START on the channel", LATENCY_BUCKETS_S),
    "voice_to_voice_seconds": ("Caller's last speech frame to agent audio (end-of-speech wait + ASR wait "
                               "+ transcript to playback)", LATENCY_BUCKETS_S),
    "turn_overhead_ms": ("Controller's own time per turn, ms", OVERHEAD_BUCKETS_MS),
    "turn_first_audio_ms": ("Transcript in to PLAYBACK_START, ms", FIRST_AUDIO_BUCKETS_MS),
    "call_quality_score": ("Quality score of each analysed call, 0-100 (docs/analytics.md)", QUALITY_BUCKETS),
}


@dataclass
class _OpenCall:
    replies: int = 0
    caller_turn: dict[str, Any] | None = None  # the latest caller turn, for voice-to-voice


@dataclass
class ControllerStats:
    turns: int = 0
    barge_ins: int = 0
    escalations: Counter[str] = field(default_factory=Counter)
    overhead_ms: BoundedSamples = field(default_factory=BoundedSamples)
    first_audio_ms: BoundedSamples = field(default_factory=BoundedSamples)
    calls_started: int = 0
    # (outcome, reason) → calls; reason is the escalation reason for transfers, the end reason otherwise.
    calls_ended: Counter[tuple[str, str]] = field(default_factory=Counter)
    histograms: dict[str, Histogram] = field(
        default_factory=lambda: {name: Histogram(bounds) for name, (_, bounds) in HISTOGRAMS.items()})
    # From each call's analytics (agent/analytics/runner.py): estimated won by part, GPU-seconds, calls analysed.
    cost_krw: Counter[str] = field(default_factory=Counter)
    gpu_seconds: float = 0.0
    calls_analyzed: int = 0
    _open: OrderedDict[str, _OpenCall] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_turn(self, overhead_ms: float, first_audio_ms: float | None) -> None:
        with self._lock:
            self.turns += 1
            self.overhead_ms.append(overhead_ms)
            self.histograms["turn_overhead_ms"].observe(overhead_ms)
            if first_audio_ms is not None:
                self.first_audio_ms.append(first_audio_ms)
                self.histograms["turn_first_audio_ms"].observe(first_audio_ms)

    def observe(self, op: Mapping[str, Any]) -> None:
        """One call-store operation (as submitted); counts calls and fills the latency histograms."""
        kind = op.get("op")
        with self._lock:
            if kind == "call_start":
                self._call_start(str(op["call_id"]))
            elif kind == "turn":
                self._turn(op)
            elif kind == "call_end":
                self._call_end(op)

    def record_analytics(self, quality_score: float, cost_parts: Mapping[str, float], gpu_seconds: float) -> None:
        """One analysed call: its quality score and cost (`cost_parts`: part → ₩, parts of COST_PARTS)."""
        with self._lock:
            self.calls_analyzed += 1
            self.histograms["call_quality_score"].observe(quality_score)
            for part in COST_PARTS:
                self.cost_krw[part] += float(cost_parts.get(part, 0.0))
            self.gpu_seconds += gpu_seconds

    def _call_start(self, call_id: str) -> None:
        if call_id in self._open:  # answered: the same call's start is written again
            return
        self.calls_started += 1
        self._open[call_id] = _OpenCall()
        while len(self._open) > OPEN_CALLS_KEPT:
            self._open.popitem(last=False)

    def _turn(self, op: Mapping[str, Any]) -> None:
        call = self._open.get(str(op.get("call_id")))
        h = self.histograms
        if op.get("speaker") == "caller":
            if op.get("source") == "asr" and op.get("asr_ms") is not None:
                h["asr_seconds"].observe(op["asr_ms"] / 1000)
            if call is not None:
                call.caller_turn = dict(op)
            return
        if op.get("source") != "policy":
            return  # prompts and fillers are not answers to a caller turn
        # A reply is written once, when its playback ended; the parts below are the ones it carries.
        if call is not None:
            call.replies += 1
        for name, key in (("llm_response_seconds", "dialog_ms"), ("tts_first_chunk_seconds", "tts_ms"),
                          ("reply_seconds", "first_audio_ms")):
            if op.get(key) is not None:
                h[name].observe(op[key] / 1000)
        v2v = voice_to_voice_ms(call.caller_turn if call else None, op)
        if v2v is not None:
            h["voice_to_voice_seconds"].observe(v2v / 1000)

    def _call_end(self, op: Mapping[str, Any]) -> None:
        call = self._open.pop(str(op.get("call_id")), None)
        outcome, reason = call_outcome(op.get("end_reason"), op.get("escalation_reason"),
                                       call.replies if call else 0)
        self.calls_ended[(outcome, reason)] += 1


def call_outcome(end_reason: str | None, escalation_reason: str | None, replies: int) -> tuple[str, str]:
    """How a call ended, for counters and the dashboard: (outcome, reason).

    transferred: handed to a human (reason = escalation reason). failed: the agent could not run the call.
    abandoned: the caller hung up before the agent answered anything they said. completed: the rest.
    """
    if end_reason == "transferred":
        return "transferred", escalation_reason or "unknown"
    if end_reason == "failed":
        return "failed", "failed"
    if end_reason == "caller_hangup" and replies == 0:
        return "abandoned", "caller_hangup"
    return "completed", end_reason or "unknown"
