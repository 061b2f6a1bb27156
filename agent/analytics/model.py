"""What one finished call yields (docs/analytics.md defines every field): a pure function of its stored rows.

`analyze(call, turns, events, settings, tts_engine)` takes the `calls` row, its `turns` and `call_events` rows
(as dicts, the shapes of sql/001_calls.sql) and returns CallAnalytics. No clock, no database: the store step and
the backfill feed it the same rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.analytics.cost import CallCost, call_cost
from agent.analytics.settings import AnalyticsSettings
from agent.analytics.timing import voice_to_voice_ms
from agent.dialog import guardrails, intents, sentiment

Row = Mapping[str, Any]
VERSION = 1  # bump when a definition changes; `callagent analyze --all` recomputes
REPLY_SOURCES = ("policy",)  # agent turns that answer a caller turn (prompts and fillers do not)
GAP_LIMIT_MS = 2000.0  # plan §5-3: caller speech end → reply over 2 s is critical
# Korean TTS at the default rate speaks about 7 syllables a second; used only when no playback time is stored.
CHARS_PER_S = 7.0
TREND_STEP = 0.05  # sentiment slope per caller turn that counts as improving / worsening
NOT_TOPICS = (intents.AFFIRM, intents.DENY, intents.UNKNOWN, intents.THANKS, intents.GOODBYE)
# Tools that read or change one customer's data: identity must be proven before the first one succeeds.
ACCOUNT_TOOLS = ("lookup_account", "lookup_order", "check_delivery", "process_return", "update_customer_info")
VERIFY_TOOL = "verify_identity"
VERIFIED_EVENTS = ("identity_verified",)
VERIFIED_SUMMARY_MARK = "본인 확인 완료"  # written by the dialog's call summary once identity was proven
DISCLOSURE_WORDS = ("인공지능", "AI", "에이아이", "자동 응답", "ARS")
RECORDING_WORDS = ("녹음", "기록됩니다", "기록되며", "기록될")
RESOLUTION_POINTS = {"resolved": 1.0, "callback": 0.7, "transferred": 0.5, "abandoned": 0.0, "failed": 0.0}
QUALITY_WEIGHTS = {"resolution": 0.30, "latency": 0.25, "compliance": 0.20, "sentiment": 0.15, "flow": 0.10}


@dataclass
class CallAnalytics:
    call_id: str
    version: int = VERSION
    duration_s: float = 0.0
    caller_speech_s: float = 0.0
    agent_speech_s: float = 0.0
    caller_share: float | None = None
    gaps_ms: list[float] = field(default_factory=list)
    gap_p50_ms: float | None = None
    gap_max_ms: float | None = None
    gaps_over_limit: int = 0
    sentiment: list[dict[str, float]] = field(default_factory=list)  # [{seq, score}] per caller turn
    sentiment_avg: float | None = None
    sentiment_end: float | None = None
    sentiment_slope: float | None = None
    sentiment_trend: str = "none"  # improving | worsening | stable | none
    intents: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    tool_failures: int = 0
    resolution: str = "resolved"  # resolved | transferred | abandoned | callback | failed
    resolution_reason: str = ""
    compliance: dict[str, bool | None] = field(default_factory=dict)
    compliance_ok: bool = True
    barge_ins: int = 0
    replies: int = 0
    quality_parts: dict[str, float] = field(default_factory=dict)
    quality_score: float = 0.0
    cost: CallCost = field(default_factory=CallCost)


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())


def caller_speech_s(turn: Row) -> float:
    """Audio seconds of one caller utterance: the worker's start/end (seconds into the call's audio)."""
    d = turn.get("detail") or {}
    start, end = d.get("start"), d.get("end")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end > start:
        return float(end) - float(start)
    return 0.0


def agent_speech_s(turn: Row) -> float:
    """Seconds the caller heard this agent turn: playback end − playback start when stored, else its heard
    text at CHARS_PER_S."""
    played = _seconds(turn.get("started_at"), turn.get("ended_at"))
    if played is not None and turn.get("first_audio_ms") is not None:
        return max(0.0, played - float(turn["first_audio_ms"]) / 1000)
    text = turn.get("heard_text") if turn.get("interrupted") else turn.get("text")
    return len((text or "").replace(" ", "")) / CHARS_PER_S


def nearest_rank(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile by nearest rank (docs/benchmarks.md): a measured value, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def _slope(ys: Sequence[float]) -> float | None:
    if len(ys) < 2:
        return None
    xs = range(len(ys))
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def _tool_calls(turns: Sequence[Row]) -> list[tuple[int, dict[str, Any]]]:
    return [(int(t["seq"]), tool) for t in turns if t["speaker"] == "agent"
            for tool in (t.get("detail") or {}).get("tools") or [] if isinstance(tool, dict)]


def resolution(call: Row, turns: Sequence[Row], events: Sequence[Row], replies: int) -> tuple[str, str]:
    end_reason = call.get("end_reason") or ""
    tools = _tool_calls(turns)
    if any("callback" in str(t.get("name", "")) and t.get("ok") for _, t in tools) or \
            any(e["kind"] == "callback_scheduled" for e in events):
        return "callback", "callback_scheduled"
    if end_reason == "transferred":
        return "transferred", call.get("escalation_reason") or "unknown"
    if end_reason == "failed":
        return "failed", call.get("hangup_cause") or "failed"
    last_caller = max((t["seq"] for t in turns if t["speaker"] == "caller"), default=None)
    last_reply = max((t["seq"] for t in turns if t["speaker"] == "agent" and t.get("source") in REPLY_SOURCES),
                     default=None)
    unanswered = last_caller is not None and (last_reply is None or last_reply < last_caller)
    if unanswered and replies:
        last_text = next(t.get("text") or "" for t in turns if t["seq"] == last_caller)
        unanswered = intents.classify(last_text) not in (intents.GOODBYE, intents.THANKS)  # "감사합니다" + hang up
    if end_reason == "caller_hangup" and (replies == 0 or unanswered):
        return "abandoned", "hung_up_before_reply" if replies == 0 else "hung_up_waiting"
    return "resolved", end_reason or "unknown"


def compliance(call: Row, turns: Sequence[Row], events: Sequence[Row]) -> dict[str, bool | None]:
    agent = [t for t in turns if t["speaker"] == "agent"]
    greeting = [t for t in agent if t.get("source") in ("greeting", "disclosure")]

    def spoken_in_full(words: Sequence[str]) -> bool | None:
        said = [t for t in greeting if any(w in (t.get("text") or "") for w in words)]
        if not greeting:
            return None  # the greeting was not stored: cannot tell
        return any(not t.get("interrupted") for t in said)

    account = [(seq, t) for seq, t in _tool_calls(turns) if t.get("name") in ACCOUNT_TOOLS and t.get("ok")]
    identity: bool | None = None
    if account:
        first = min(seq for seq, _ in account)
        verified_tool = any(t.get("name") == VERIFY_TOOL and t.get("ok") and seq <= first
                            for seq, t in _tool_calls(turns))
        verified_event = any(e["kind"] in VERIFIED_EVENTS for e in events)
        identity = verified_tool or verified_event or VERIFIED_SUMMARY_MARK in (call.get("summary") or "")
    stored = [t.get("text") or "" for t in turns] + [t.get("heard_text") or "" for t in turns] + \
        [call.get("summary") or ""]
    return {
        "ai_disclosure": spoken_in_full(DISCLOSURE_WORDS),
        "recording_notice": spoken_in_full(RECORDING_WORDS),
        "identity_before_account_tool": identity,
        "no_secret_asked": not any(guardrails.asks_for_secret(t.get("text") or "") for t in agent),
        "pii_masked": not any(guardrails.contains_secret(text) for text in stored),
    }


def quality(resolution_kind: str, gaps: Sequence[float], checks: Mapping[str, bool | None],
            sentiment_end: float | None, barge_ins: int, replies: int) -> tuple[float, dict[str, float]]:
    """100 × Σ weight × part, each part in 0..1 (docs/analytics.md, "Quality score")."""
    known = [v for v in checks.values() if v is not None]
    parts = {
        "resolution": RESOLUTION_POINTS.get(resolution_kind, 0.0),
        "latency": sum(1 for g in gaps if g <= GAP_LIMIT_MS) / len(gaps) if gaps else 1.0,
        "compliance": sum(1 for v in known if v) / len(known) if known else 1.0,
        "sentiment": (sentiment_end + 1) / 2 if sentiment_end is not None else 0.5,
        "flow": 1.0 - min(1.0, barge_ins / replies) if replies else 1.0,
    }
    score = 100 * sum(QUALITY_WEIGHTS[k] * v for k, v in parts.items())
    return round(score, 1), {k: round(v, 3) for k, v in parts.items()}


def analyze(call: Row, turns: Sequence[Row], events: Sequence[Row], settings: AnalyticsSettings,
            tts_engine: str) -> CallAnalytics:
    turns = sorted(turns, key=lambda t: t["seq"])
    a = CallAnalytics(call_id=str(call["call_id"]))
    a.duration_s = round(_seconds(call.get("started_at"), call.get("ended_at")) or 0.0, 3)
    callers = [t for t in turns if t["speaker"] == "caller"]
    agents = [t for t in turns if t["speaker"] == "agent"]
    a.caller_speech_s = round(sum(caller_speech_s(t) for t in callers), 3)
    a.agent_speech_s = round(sum(agent_speech_s(t) for t in agents), 3)
    talk = a.caller_speech_s + a.agent_speech_s
    a.caller_share = round(a.caller_speech_s / talk, 4) if talk > 0 else None

    last_caller: Row | None = None
    for t in turns:
        if t["speaker"] == "caller":
            last_caller = t
        elif t.get("source") in REPLY_SOURCES:
            a.replies += 1
            gap = voice_to_voice_ms(last_caller, t)
            if gap is not None:
                a.gaps_ms.append(round(gap, 1))
    a.gap_p50_ms = nearest_rank(a.gaps_ms, 50)
    a.gap_max_ms = max(a.gaps_ms) if a.gaps_ms else None
    a.gaps_over_limit = sum(1 for g in a.gaps_ms if g > GAP_LIMIT_MS)

    a.sentiment = [{"seq": int(t["seq"]), "score": round(sentiment.score(t.get("text") or ""), 3)}
                   for t in callers if (t.get("text") or "").strip()]
    scores = [s["score"] for s in a.sentiment]
    if scores:
        a.sentiment_avg = round(statistics.fmean(scores), 3)
        a.sentiment_end = round(statistics.fmean(scores[-2:]), 3)
        slope = _slope(scores)
        a.sentiment_slope = None if slope is None else round(slope, 3)
        a.sentiment_trend = "stable" if slope is None or abs(slope) < TREND_STEP else \
            "improving" if slope > 0 else "worsening"

    for t in callers:
        intent = intents.classify(t.get("text") or "")
        if intent not in NOT_TOPICS and intent not in a.intents:
            a.intents.append(intent)
    for _, tool in _tool_calls(turns):
        name = str(tool.get("name", ""))
        if name and name not in a.tools:
            a.tools.append(name)
        a.tool_failures += 0 if tool.get("ok") else 1

    a.barge_ins = sum(1 for e in events if e["kind"] == "barge_in")
    a.resolution, a.resolution_reason = resolution(call, turns, events, a.replies)
    a.compliance = compliance(call, turns, events)
    a.compliance_ok = all(v for v in a.compliance.values() if v is not None)
    a.quality_score, a.quality_parts = quality(a.resolution, a.gaps_ms, a.compliance, a.sentiment_end,
                                               a.barge_ins, a.replies)
    a.cost = call_cost(turns, a.duration_s, a.agent_speech_s, settings, tts_engine, events)
    return a
