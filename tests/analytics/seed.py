"""Stored calls for the analytics and dashboard tests, in the row shapes the call store writes (sql/001)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from agent.store.db import Database

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 10:00 in Seoul


def caller(seq: int, at: datetime, text: str, start: float, end: float, *, engine: str = "vosk",
           asr_ms: float = 120.0, asr_wait_ms: float = 40.0, eos_wait_ms: float = 800.0) -> dict[str, Any]:
    return {"seq": seq, "speaker": "caller", "started_at": at, "ended_at": None, "text": text, "source": "asr",
            "engine": engine, "asr_ms": asr_ms, "eos_wait_ms": eos_wait_ms,
            "detail": {"start": start, "end": end, "utterance": seq, "asr_wait_ms": asr_wait_ms}}


def reply(seq: int, at: datetime, text: str, *, played_s: float, first_audio_ms: float = 300.0,
          eos_wait_ms: float = 800.0, asr_ms: float = 120.0, dialog_ms: float = 200.0, tts_ms: float = 60.0,
          tools: list[dict[str, Any]] | None = None, interrupted: bool = False, heard: str | None = None,
          usage: tuple[int, int] | None = None, source: str = "policy") -> dict[str, Any]:
    detail: dict[str, Any] = {"tools": tools or [], "overhead_ms": 1.0}
    if usage is not None:
        detail["llm_usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return {"seq": seq, "speaker": "agent", "started_at": at,
            "ended_at": at + timedelta(seconds=first_audio_ms / 1000 + played_s), "text": text,
            "source": source, "heard_text": heard if interrupted else text, "interrupted": interrupted,
            "eos_wait_ms": eos_wait_ms, "asr_ms": asr_ms, "dialog_ms": dialog_ms, "tts_ms": tts_ms,
            "first_audio_ms": first_audio_ms, "detail": detail}


def greeting(at: datetime, text: str = "안녕하세요. 저는 인공지능 상담원이며 통화 내용은 녹음됩니다.",
             interrupted: bool = False) -> dict[str, Any]:
    return {"seq": 0, "speaker": "agent", "started_at": at, "ended_at": None, "text": text, "source": "greeting",
            "heard_text": text[:5] if interrupted else None, "interrupted": interrupted, "detail": {}}


def insert_call(db: Database, call_id: str, started_at: datetime, turns: list[dict[str, Any]], *,
                duration_s: float | None = 60.0, end_reason: str = "agent_hangup",
                escalation_reason: str | None = None, summary: str | None = None,
                events: list[tuple[str, dict[str, Any]]] = (), industry: str = "ecommerce") -> None:
    ended = started_at + timedelta(seconds=duration_s) if duration_s is not None else None
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO calls (call_id, caller, destination, industry, started_at, answered_at, ended_at,"
            " end_reason, transfer_target, escalation_reason, summary) VALUES (%s, '01012345678', '15881234', %s,"
            " %s, %s, %s, %s, %s, %s, %s)",
            (call_id, industry, started_at, started_at, ended, end_reason if ended else None,
             "human XML ai_escalation" if end_reason == "transferred" else None, escalation_reason, summary))
        for t in turns:
            row = {"heard_text": None, "interrupted": False, "eos_wait_ms": None, "asr_ms": None,
                   "dialog_ms": None, "tts_ms": None, "first_audio_ms": None, "engine": None, "ended_at": None, **t}
            conn.execute(
                "INSERT INTO turns (call_id, seq, speaker, started_at, ended_at, text, source, engine, heard_text,"
                " interrupted, eos_wait_ms, asr_ms, dialog_ms, tts_ms, first_audio_ms, detail) VALUES (%s, %s, %s,"
                " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (call_id, row["seq"], row["speaker"], row["started_at"], row["ended_at"], row["text"],
                 row["source"], row["engine"], row["heard_text"], row["interrupted"], row["eos_wait_ms"],
                 row["asr_ms"], row["dialog_ms"], row["tts_ms"], row["first_audio_ms"], Jsonb(row["detail"])))
        for i, (kind, detail) in enumerate(events, 1):
            conn.execute("INSERT INTO call_events (call_id, seq, at, kind, detail) VALUES (%s, %s, %s, %s, %s)",
                         (call_id, i, started_at, kind, Jsonb(detail)))


def seed_many(db: Database, n: int, *, days: int = 10, seed: int = 7, open_calls: int = 3,
              end: datetime = T0) -> None:
    """`n` finished calls spread over `days` days before `end` (plus `open_calls` live ones), by COPY: seconds."""
    rng = random.Random(seed)
    outcomes = [("agent_hangup", None)] * 6 + [("transferred", "caller_requested"),
                                               ("transferred", "sensitive_topic"), ("caller_hangup", None),
                                               ("failed", None)]
    with db.connection() as conn:
        with conn.cursor().copy("COPY calls (call_id, caller, industry, started_at, answered_at, ended_at,"
                                " end_reason, escalation_reason, summary) FROM STDIN") as copy:
            for i in range(n):
                start = end - timedelta(seconds=rng.uniform(60, days * 86400))
                end_reason, reason = rng.choice(outcomes)
                copy.write_row((f"seed-{i:05d}", f"010{i:08d}", "ecommerce", start, start,
                                start + timedelta(seconds=rng.uniform(20, 300)), end_reason, reason,
                                "고객 문의: 배송 조회"))
            for i in range(open_calls):
                start = end - timedelta(seconds=30 * (i + 1))
                copy.write_row((f"live-{i}", "01099998888", "ecommerce", start, start, None, None, None, None))
        with conn.cursor().copy("COPY turns (call_id, seq, speaker, started_at, ended_at, text, source, engine,"
                                " eos_wait_ms, asr_ms, dialog_ms, tts_ms, first_audio_ms, detail) FROM STDIN") as copy:
            for i in range(n):
                at = end
                for k in range(rng.randint(0, 3)):
                    copy.write_row((f"seed-{i:05d}", 2 * k + 1, "caller", at, None, "배송 조회하고 싶어요", "asr",
                                    "vosk", 800.0, 150.0, None, None, None,
                                    Jsonb({"start": 5.0 + 10 * k, "end": 7.0 + 10 * k, "asr_wait_ms": 50.0})))
                    copy.write_row((f"seed-{i:05d}", 2 * k + 2, "agent", at, at + timedelta(seconds=4),
                                    "주문번호를 말씀해 주세요.", "policy", None, 800.0, 150.0, 200.0, 60.0,
                                    rng.uniform(200, 1500), Jsonb({"tools": [{"name": "lookup_order", "ok": True}],
                                                                   "llm_usage": {"prompt_tokens": 900,
                                                                                 "completion_tokens": 40}})))
