"""Reads a stored call, analyses it, writes `call_analytics` (sql/007); and the `callagent analyze` backfill.

SQL over the connection agent.store.db hands out; JSON goes in as text cast to jsonb, so psycopg stays
imported by agent/store alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from agent.analytics.model import VERSION, CallAnalytics, analyze
from agent.analytics.settings import AnalyticsSettings
from agent.store.db import Database

log = logging.getLogger(__name__)

BACKFILL_BATCH = 200

_UPSERT = """
INSERT INTO call_analytics (call_id, version, analyzed_at, started_at, duration_s, caller_speech_s, agent_speech_s,
    caller_share, gaps_ms, gap_p50_ms, gap_max_ms, gaps_over_limit, sentiment, sentiment_avg, sentiment_end,
    sentiment_trend, intents, tools, tool_failures, resolution, resolution_reason, compliance, compliance_ok,
    barge_ins, replies, quality_score, quality_parts, llm_prompt_tokens, llm_completion_tokens, asr_engine,
    asr_seconds, tts_engine, tts_seconds, gpu_seconds, cost_krw, cost)
VALUES (%(call_id)s, %(version)s, now(), %(started_at)s, %(duration_s)s, %(caller_speech_s)s, %(agent_speech_s)s,
    %(caller_share)s, %(gaps_ms)s, %(gap_p50_ms)s, %(gap_max_ms)s, %(gaps_over_limit)s, %(sentiment)s::jsonb,
    %(sentiment_avg)s, %(sentiment_end)s, %(sentiment_trend)s, %(intents)s, %(tools)s, %(tool_failures)s,
    %(resolution)s, %(resolution_reason)s, %(compliance)s::jsonb, %(compliance_ok)s, %(barge_ins)s, %(replies)s,
    %(quality_score)s, %(quality_parts)s::jsonb, %(llm_prompt_tokens)s, %(llm_completion_tokens)s, %(asr_engine)s,
    %(asr_seconds)s, %(tts_engine)s, %(tts_seconds)s, %(gpu_seconds)s, %(cost_krw)s, %(cost)s::jsonb)
ON CONFLICT (call_id) DO UPDATE SET
""" + ", ".join(f"{c} = EXCLUDED.{c}" for c in (
    "version", "analyzed_at", "started_at", "duration_s", "caller_speech_s", "agent_speech_s", "caller_share",
    "gaps_ms", "gap_p50_ms", "gap_max_ms", "gaps_over_limit", "sentiment", "sentiment_avg", "sentiment_end",
    "sentiment_trend", "intents", "tools", "tool_failures", "resolution", "resolution_reason", "compliance",
    "compliance_ok", "barge_ins", "replies", "quality_score", "quality_parts", "llm_prompt_tokens",
    "llm_completion_tokens", "asr_engine", "asr_seconds", "tts_engine", "tts_seconds", "gpu_seconds", "cost_krw",
    "cost"))


def load_call(conn: Any, call_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
    call = conn.execute("SELECT * FROM calls WHERE call_id = %s", (call_id,)).fetchone()
    if call is None:
        return None
    turns = conn.execute("SELECT * FROM turns WHERE call_id = %s ORDER BY seq", (call_id,)).fetchall()
    events = conn.execute("SELECT * FROM call_events WHERE call_id = %s ORDER BY seq", (call_id,)).fetchall()
    return call, turns, events


def analyze_in(conn: Any, call_id: str, settings: AnalyticsSettings, tts_engine: str) -> CallAnalytics | None:
    """Analyses and stores one call on an open connection; None while the call has not ended (or is unknown)."""
    loaded = load_call(conn, call_id)
    if loaded is None or loaded[0]["ended_at"] is None:
        return None
    call, turns, events = loaded
    result = analyze(call, turns, events, settings, tts_engine)
    save(conn, result, call["started_at"])
    return result


def analyze_call(db: Database, call_id: str, settings: AnalyticsSettings | None = None,
                 tts_engine: str = "") -> CallAnalytics | None:
    """Analyses one stored call and writes its `call_analytics` row; None if it has not ended."""
    with db.connection() as conn:
        return analyze_in(conn, call_id, settings or AnalyticsSettings(), tts_engine)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def save(conn: Any, a: CallAnalytics, started_at: datetime) -> None:
    c = a.cost
    conn.execute(_UPSERT, {
        "call_id": a.call_id, "version": a.version, "started_at": started_at, "duration_s": a.duration_s,
        "caller_speech_s": a.caller_speech_s, "agent_speech_s": a.agent_speech_s, "caller_share": a.caller_share,
        "gaps_ms": a.gaps_ms, "gap_p50_ms": a.gap_p50_ms, "gap_max_ms": a.gap_max_ms,
        "gaps_over_limit": a.gaps_over_limit, "sentiment": _json(a.sentiment), "sentiment_avg": a.sentiment_avg,
        "sentiment_end": a.sentiment_end, "sentiment_trend": a.sentiment_trend, "intents": a.intents,
        "tools": a.tools, "tool_failures": a.tool_failures, "resolution": a.resolution,
        "resolution_reason": a.resolution_reason, "compliance": _json(a.compliance),
        "compliance_ok": a.compliance_ok, "barge_ins": a.barge_ins, "replies": a.replies,
        "quality_score": a.quality_score, "quality_parts": _json(a.quality_parts),
        "llm_prompt_tokens": c.llm_prompt_tokens, "llm_completion_tokens": c.llm_completion_tokens,
        "asr_engine": c.asr_engine, "asr_seconds": c.asr_seconds, "tts_engine": c.tts_engine,
        "tts_seconds": c.tts_seconds, "gpu_seconds": c.gpu_seconds, "cost_krw": c.total_krw,
        "cost": _json(c.as_dict()),
    })


def pending_calls(conn: Any, since: datetime | None, redo: bool, limit: int,
                  after: str = "") -> list[str]:
    """Ended calls without a current analytics row (all ended calls with `redo`), in call_id order."""
    sql = ("SELECT c.call_id FROM calls c LEFT JOIN call_analytics a USING (call_id)"
           " WHERE c.ended_at IS NOT NULL AND c.call_id > %(after)s"
           " AND (%(since)s::timestamptz IS NULL OR c.started_at >= %(since)s)")
    if not redo:
        sql += " AND (a.call_id IS NULL OR a.version < %(version)s)"
    sql += " ORDER BY c.call_id LIMIT %(limit)s"
    rows = conn.execute(sql, {"after": after, "since": since, "version": VERSION, "limit": limit}).fetchall()
    return [r["call_id"] for r in rows]


def backfill(db: Database, settings: AnalyticsSettings, tts_engine: str, *, since: datetime | None = None,
             redo: bool = False) -> Iterator[str]:
    """Analyses every ended call that needs it (started at or after `since`); yields each call id done."""
    after = ""
    while True:
        with db.connection() as conn:
            ids = pending_calls(conn, since, redo, BACKFILL_BATCH, after)
            for call_id in ids:
                if analyze_in(conn, call_id, settings, tts_engine) is not None:
                    yield call_id
        if len(ids) < BACKFILL_BATCH:
            return
        after = ids[-1]
