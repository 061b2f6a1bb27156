"""`callagent tail <call_id>`: a call's events and turns as they happen, read from PostgreSQL.

The controller's writer thread stores each turn and event within moments; tail polls `turns` and `call_events`
by sequence number, so a line is printed once, in order, and the command ends when the call has ended.
A unique prefix of the call id is enough.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from agent.store.db import Database

POLL_S = 0.5


class TailError(LookupError):
    pass


def resolve_call(db: Database, prefix: str) -> str:
    with db.connection() as conn:
        rows = conn.execute("SELECT call_id FROM calls WHERE call_id LIKE %s ORDER BY started_at DESC LIMIT 2",
                            (prefix.replace("%", r"\%").replace("_", r"\_") + "%",)).fetchall()
    if not rows:
        raise TailError(f"no call with id {prefix!r}")
    if len(rows) > 1 and rows[0]["call_id"] != prefix:
        raise TailError(f"{prefix!r} matches several calls; give more of the id")
    return rows[0]["call_id"]


@dataclass
class Cursor:
    """What has been printed so far."""

    event_seq: int = 0
    turn_seq: int = 0
    header: bool = False
    lines: list[str] = field(default_factory=list)


def poll(db: Database, call_id: str, cur: Cursor) -> tuple[list[str], dict[str, Any]]:
    """New lines since `cur` (advancing it) and the call row."""
    with db.connection() as conn:
        call = conn.execute("SELECT * FROM calls WHERE call_id = %s", (call_id,)).fetchone()
        events = conn.execute("SELECT seq, at, kind, detail FROM call_events WHERE call_id = %s AND seq > %s "
                              "ORDER BY seq", (call_id, cur.event_seq)).fetchall()
        turns = conn.execute("SELECT seq, started_at, speaker, text, source, interrupted, heard_text FROM turns "
                             "WHERE call_id = %s AND seq > %s ORDER BY seq", (call_id, cur.turn_seq)).fetchall()
    out: list[tuple[Any, str]] = []
    if not cur.header and call is not None:
        cur.header = True
        out.append((call["started_at"], f"call {call_id} industry={call['industry'] or '-'} started"))
    for e in events:
        cur.event_seq = max(cur.event_seq, e["seq"])
        detail = json.dumps(e["detail"], ensure_ascii=False) if e["detail"] else ""
        out.append((e["at"], f"event  {e['kind']} {detail}".rstrip()))
    for t in turns:
        cur.turn_seq = max(cur.turn_seq, t["seq"])
        note = f" [cut; heard: {t['heard_text']}]" if t["interrupted"] else ""
        out.append((t["started_at"], f"{t['speaker']:6} {t['text']}{note}  ({t['source']})"))
    out.sort(key=lambda item: item[0])
    return [f"{at:%H:%M:%S.%f}"[:-3] + "  " + text for at, text in out], (call or {})


def tail(db: Database, call_id: str, out: TextIO, *, follow: bool = True, poll_s: float = POLL_S,
         sleep: Callable[[float], None] = time.sleep, max_wait_s: float | None = None) -> int:
    """Prints the call so far, then (with `follow`) new lines until the call ends. Returns 0, or 1 on timeout."""
    call_id = resolve_call(db, call_id)
    cur = Cursor()
    waited = 0.0
    while True:
        lines, call = poll(db, call_id, cur)
        for line in lines:
            print(line, file=out, flush=True)
        if call.get("ended_at") is not None:
            # one more read: rows written just before the end row may land in the same moment
            lines, _ = poll(db, call_id, cur)
            for line in lines:
                print(line, file=out, flush=True)
            reason = call.get("end_reason") or "?"
            target = f" to {call['transfer_target']}" if call.get("transfer_target") else ""
            print(f"{call['ended_at']:%H:%M:%S.%f}"[:-3] + f"  call ended: {reason}{target}", file=out, flush=True)
            return 0
        if not follow:
            return 0
        if max_wait_s is not None and waited >= max_wait_s:
            return 1
        sleep(poll_s)
        waited += poll_s
