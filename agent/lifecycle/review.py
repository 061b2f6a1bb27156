"""Reviewer corrections of caller transcripts (`transcript_reviews`, sql/008_lifecycle.sql)."""

from __future__ import annotations

from agent.privacy.pii import mask_text
from agent.store.db import Database


class ReviewError(ValueError):
    pass


def save_review(db: Database, call_id: str, seq: int, text: str, reviewer: str = "") -> str:
    """Stores the corrected text of caller turn `seq` (masked: a reviewer may type what was said); returns it."""
    text = " ".join(text.split())
    if not text:
        raise ReviewError("a correction needs text")
    masked = mask_text(text)
    with db.connection() as conn:
        row = conn.execute("SELECT speaker FROM turns WHERE call_id = %s AND seq = %s", (call_id, seq)).fetchone()
        if row is None:
            raise ReviewError(f"call {call_id} has no turn {seq}")
        if row["speaker"] != "caller":
            raise ReviewError(f"turn {seq} of call {call_id} is the {row['speaker']}'s, not the caller's")
        conn.execute(
            "INSERT INTO transcript_reviews (call_id, seq, text, reviewer) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (call_id, seq) DO UPDATE SET text = EXCLUDED.text, reviewer = EXCLUDED.reviewer,"
            " reviewed_at = now()", (call_id, seq, masked, reviewer))
    return masked


def reviews_for(db: Database, call_id: str) -> dict[int, str]:
    with db.connection() as conn:
        rows = conn.execute("SELECT seq, text FROM transcript_reviews WHERE call_id = %s", (call_id,)).fetchall()
    return {r["seq"]: r["text"] for r in rows}
