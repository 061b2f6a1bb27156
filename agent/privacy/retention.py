"""Deleting what is kept: `purge` removes calls, transcripts and recordings past the retention period;
`forget` removes every call of one caller (a PIPA deletion request). Files go first, then the rows (turns,
events and analytics follow their call through ON DELETE CASCADE), all in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.store.db import Database

log = logging.getLogger(__name__)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _has_table(conn: Any, name: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (name,)).fetchone()["present"])


def _delete_calls(conn: Any, call_ids: list[str]) -> tuple[int, int]:
    """Deletes the recordings (files and rows) and the calls; returns (calls, recording files)."""
    files = 0
    rows = conn.execute("DELETE FROM recordings WHERE call_id = ANY(%s) RETURNING path", (call_ids,)).fetchall()
    for row in rows:
        files += _unlink(Path(row["path"]))
    calls = conn.execute("DELETE FROM calls WHERE call_id = ANY(%s)", (call_ids,)).rowcount
    return calls, files


def _sweep(directory: Path | None, cutoff_epoch: float, call_ids: set[str]) -> int:
    """Recording files left without a row (a seal that failed leaves the plain WAV): by age or by call."""
    if directory is None or not directory.is_dir():
        return 0
    removed = 0
    for path in directory.iterdir():
        if not path.is_file() or not path.name.endswith((".wav", ".wav.enc")):
            continue
        call_id = path.name.split(".", 1)[0]
        with contextlib.suppress(FileNotFoundError):
            if call_id in call_ids or path.stat().st_mtime < cutoff_epoch:
                removed += _unlink(path)
    return removed


def purge(db: Database, older_than_days: float, *, now: datetime, recording_dir: Path | None = None) -> dict[str, int]:
    """Deletes calls started before `now - older_than_days` with their transcripts, events, analytics and
    recordings; also recordings and finished callback requests older than that."""
    cutoff = now - timedelta(days=older_than_days)
    with db.connection() as conn:
        ids = [r["call_id"] for r in conn.execute("SELECT call_id FROM calls WHERE started_at < %s",
                                                   (cutoff,)).fetchall()]
        old = [r["call_id"] for r in conn.execute("SELECT call_id FROM recordings WHERE created_at < %s",
                                                   (cutoff,)).fetchall()]
        calls, files = _delete_calls(conn, sorted(set(ids) | set(old)))
        callbacks = 0
        if _has_table(conn, "callbacks"):
            callbacks = conn.execute("DELETE FROM callbacks WHERE requested_at < %s AND status NOT IN"
                                     " ('pending', 'dialing')", (cutoff,)).rowcount
    files += _sweep(recording_dir, cutoff.timestamp(), set())
    result = {"calls": calls, "recording_files": files, "callbacks": callbacks}
    log.info("purged data older than %s days: %s", older_than_days, result)
    return result


def number_forms(number: str) -> list[str]:
    """The digit strings one phone number may be stored as: "010…", "8210…" ("+82 10-…" as written)."""
    digits = re.sub(r"\D", "", number)
    if not digits:
        raise ValueError("a caller number needs digits")
    national = "0" + digits[2:] if digits.startswith("82") else digits
    forms = {digits, national}
    if national.startswith("0"):
        forms.add("82" + national[1:])
    return sorted(forms)


def forget(db: Database, caller: str, *, recording_dir: Path | None = None) -> dict[str, int]:
    """Erases every call from `caller` (rows, transcripts, recordings) and their callback requests."""
    forms = number_forms(caller)
    with db.connection() as conn:
        ids = [r["call_id"] for r in conn.execute(
            "SELECT call_id FROM calls WHERE regexp_replace(caller, '[^0-9]', '', 'g') = ANY(%s)",
            (forms,)).fetchall()]
        calls, files = _delete_calls(conn, ids)
        callbacks = 0
        if _has_table(conn, "callbacks"):
            callbacks = conn.execute(
                "DELETE FROM callbacks WHERE regexp_replace(number, '[^0-9]', '', 'g') = ANY(%s)"
                " OR call_id = ANY(%s)", (forms, ids)).rowcount
    files += _sweep(recording_dir, 0.0, set(ids))
    result = {"calls": calls, "recording_files": files, "callbacks": callbacks}
    log.info("deletion request carried out: %s", result)  # counts only: the number itself is not logged
    return result


def now_utc() -> datetime:
    return datetime.fromtimestamp(time.time()).astimezone()
