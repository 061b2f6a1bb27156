"""Operator views of stored calls: a readable transcript with latency parts, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

LATENCY_FIELDS = ("eos_wait_ms", "asr_ms", "dialog_ms", "tts_ms", "first_audio_ms")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def latency_parts(turn: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(turn[k]), 1) for k in LATENCY_FIELDS if turn.get(k) is not None}


def format_call(call: dict[str, Any]) -> str:
    lines = [
        f"call {call['call_id']}  from {call['caller'] or '-'} to {call['destination'] or '-'}  "
        f"started {call['started_at']:%Y-%m-%d %H:%M:%S}  ended: {call.get('end_reason') or 'in progress'}"
        + (f" → {call['transfer_target']} ({call['escalation_reason']})" if call.get("transfer_target") else "")
    ]
    for turn in call.get("turns", []):
        who = "caller" if turn["speaker"] == "caller" else "agent "
        text = turn["text"]
        if turn.get("interrupted"):
            text = f"{turn.get('heard_text') or ''} ✂ (cut by barge-in; said: {text})"
        lines.append(f"  {who} [{turn['source']}] {text}")
        spoken = (turn.get("detail") or {}).get("tts_text")
        if spoken and spoken != turn["text"]:
            lines.append(f"         spoken as: {spoken}")  # what the TTS was given (numbers read out)
        parts = latency_parts(turn)
        if turn["speaker"] == "agent" and parts:
            lines.append("         " + "  ".join(f"{k[:-3]}={v:.0f}ms" for k, v in parts.items()))
    if call.get("summary"):
        lines.append(f"  summary: {call['summary']}")
    return "\n".join(lines)


def print_calls(calls: Sequence[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_jsonable(list(calls)), ensure_ascii=False, indent=2))
        return
    if not calls:
        print("no calls stored yet")
    for call in calls:
        print(format_call(call))
        print()
