"""What the dashboard shows, as bounded queries over calls, turns and call_analytics (docs/analytics.md).

Every list is paginated or limited; daily figures aggregate in PostgreSQL over a window of days, so a page costs
the same with 10,000 stored calls as with 10. A "day" is a calendar day in `analytics.timezone`.

Outcome of an ended call: its analytics' resolution when analysed; otherwise from calls.end_reason alone
(transferred, failed, else resolved). Completed = resolved or callback. The rates divide by ended calls.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

MAX_PAGE = 500
LIVE_LIMIT = 200

_OUTCOME = ("CASE WHEN a.resolution IS NOT NULL THEN a.resolution WHEN c.end_reason = 'transferred' THEN"
            " 'transferred' WHEN c.end_reason = 'failed' THEN 'failed' ELSE 'resolved' END")


def _since(today: date, days: int) -> date:
    return today - timedelta(days=days - 1)


def daily(conn: Any, tz: str, today: date, days: int) -> list[dict[str, Any]]:
    """One row per day with ended calls, newest first: counts by outcome, rates, cost, quality, GPU time,
    voice-to-voice p50/p95 (nearest rank over every reply of the day's analysed calls)."""
    params = {"tz": tz, "since": _since(today, days), "until": today + timedelta(days=1)}
    rows = conn.execute(f"""
        WITH c AS (
            SELECT (c.started_at AT TIME ZONE %(tz)s)::date AS day, {_OUTCOME} AS outcome,
                   a.call_id IS NOT NULL AS analysed, a.cost_krw, a.quality_score, a.gpu_seconds,
                   a.llm_prompt_tokens + a.llm_completion_tokens AS tokens
            FROM calls c LEFT JOIN call_analytics a USING (call_id)
            WHERE c.ended_at IS NOT NULL
              AND c.started_at >= (%(since)s::date)::timestamp AT TIME ZONE %(tz)s
              AND c.started_at < (%(until)s::date)::timestamp AT TIME ZONE %(tz)s)
        SELECT day, count(*) AS calls,
               count(*) FILTER (WHERE outcome IN ('resolved', 'callback')) AS completed,
               count(*) FILTER (WHERE outcome = 'transferred') AS transferred,
               count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
               count(*) FILTER (WHERE outcome = 'failed') AS failed,
               count(*) FILTER (WHERE outcome = 'callback') AS callbacks,
               count(*) FILTER (WHERE analysed) AS analysed,
               coalesce(sum(cost_krw::float8), 0) AS cost_krw, avg(quality_score::float8) AS quality,
               coalesce(sum(gpu_seconds::float8), 0) AS gpu_seconds, coalesce(sum(tokens), 0) AS tokens
        FROM c GROUP BY day ORDER BY day DESC""", params).fetchall()
    gaps = {r["day"]: r for r in conn.execute("""
        SELECT (a.started_at AT TIME ZONE %(tz)s)::date AS day,
               percentile_disc(0.5) WITHIN GROUP (ORDER BY g) AS v2v_p50,
               percentile_disc(0.95) WITHIN GROUP (ORDER BY g) AS v2v_p95, count(*) AS replies
        FROM call_analytics a, unnest(a.gaps_ms) AS g
        WHERE a.started_at >= (%(since)s::date)::timestamp AT TIME ZONE %(tz)s
          AND a.started_at < (%(until)s::date)::timestamp AT TIME ZONE %(tz)s
        GROUP BY 1""", params).fetchall()}
    for r in rows:
        n = r["calls"]
        r["completion_rate"] = r["completed"] / n if n else None
        r["escalation_rate"] = r["transferred"] / n if n else None
        r["cost_per_call"] = r["cost_krw"] / r["analysed"] if r["analysed"] else None
        if not r["analysed"]:
            r["cost_krw"] = None  # not measured: no call of the day was analysed
        gpu_hours = r["gpu_seconds"] / 3600
        r["calls_per_gpu_hour"] = r["analysed"] / gpu_hours if gpu_hours > 0 else None
        g = gaps.get(r["day"], {})
        r["v2v_p50"], r["v2v_p95"] = g.get("v2v_p50"), g.get("v2v_p95")
    return rows


def escalation_reasons(conn: Any, tz: str, today: date, days: int) -> list[dict[str, Any]]:
    return conn.execute("""
        SELECT coalesce(escalation_reason, 'unknown') AS reason, count(*) AS calls FROM calls
        WHERE end_reason = 'transferred'
          AND started_at >= (%(since)s::date)::timestamp AT TIME ZONE %(tz)s
        GROUP BY 1 ORDER BY 2 DESC, 1""", {"tz": tz, "since": _since(today, days)}).fetchall()


def recent_calls(conn: Any, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """A page of calls, newest first, with their analytics summary; and the number of calls in all."""
    size = max(1, min(size, MAX_PAGE))
    total = conn.execute("SELECT count(*) AS n FROM calls").fetchone()["n"]
    rows = conn.execute(f"""
        SELECT c.call_id, c.caller, c.industry, c.started_at, c.ended_at, c.end_reason, c.escalation_reason,
               {_OUTCOME} AS outcome, a.quality_score, a.cost_krw, a.gap_p50_ms, a.sentiment_trend,
               a.call_id IS NOT NULL AS analysed,
               extract(epoch FROM c.ended_at - c.started_at) AS duration_s
        FROM calls c LEFT JOIN call_analytics a USING (call_id)
        ORDER BY c.started_at DESC, c.call_id LIMIT %s OFFSET %s""",
                        (size, max(0, page - 1) * size)).fetchall()
    for r in rows:
        if r["ended_at"] is None:
            r["outcome"] = "live"
    return rows, total


def open_calls(conn: Any, now: datetime) -> list[dict[str, Any]]:
    """Calls with no end yet (the fallback when no controller `/status` answers), with their last turn."""
    rows = conn.execute("""
        SELECT c.call_id, c.industry, c.started_at, t.speaker AS last_speaker, t.text AS last_text,
               t.started_at AS last_at
        FROM calls c LEFT JOIN LATERAL (
            SELECT speaker, text, started_at FROM turns WHERE call_id = c.call_id ORDER BY seq DESC LIMIT 1
        ) t ON true
        WHERE c.ended_at IS NULL ORDER BY c.started_at DESC LIMIT %s""", (LIVE_LIMIT,)).fetchall()
    for r in rows:
        r["age_s"] = max(0.0, (now - r["started_at"]).total_seconds())
        r["state"] = "open (database)"
    return rows


def call_detail(conn: Any, call_id: str) -> dict[str, Any] | None:
    call = conn.execute("SELECT * FROM calls WHERE call_id = %s", (call_id,)).fetchone()
    if call is None:
        return None
    call["turns"] = conn.execute("SELECT * FROM turns WHERE call_id = %s ORDER BY seq", (call_id,)).fetchall()
    call["events"] = conn.execute("SELECT * FROM call_events WHERE call_id = %s ORDER BY seq",
                                  (call_id,)).fetchall()
    call["analytics"] = conn.execute("SELECT * FROM call_analytics WHERE call_id = %s", (call_id,)).fetchone()
    return call
