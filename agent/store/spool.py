"""The call store's files: records waiting for PostgreSQL, in submission order, one JSON object a line.

`pending.jsonl` is written by the writer thread while the database is down. `overflow.jsonl` is written by
`CallStore.submit` itself when the in-memory queue is full (the writer is stuck behind a hung database): it
holds only records newer than everything still queued, so the writer appends it to `pending.jsonl` once the
queue has drained, and order is kept. A line torn by a crash mid-write is quarantined, not replayed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.store.quarantine import DeadLetter, sanitize

Record = dict[str, object]


def _line(item: Mapping[str, object]) -> str:
    return json.dumps(item, ensure_ascii=False, default=str) + "\n"


class DiskSpool:
    def __init__(self, spool_dir: Path, dead: DeadLetter):
        spool_dir.mkdir(parents=True, exist_ok=True)
        self.pending = spool_dir / "pending.jsonl"
        self.overflow = spool_dir / "overflow.jsonl"
        self._dead = dead

    def has_pending(self) -> bool:
        return self.pending.exists()

    @staticmethod
    def append(path: Path, items: Iterable[Mapping[str, object]]) -> int:
        n = 0
        with path.open("a", encoding="utf-8") as f:
            for item in items:
                f.write(_line(item))
                n += 1
            f.flush()  # in the kernel's hands now: a kill -9 of this process cannot lose it
        return n

    def read(self) -> list[Record]:
        """The pending records in order; lines that are not a JSON object go to the dead letter file."""
        if not self.pending.exists():
            return []
        records: list[Record] = []
        for raw in self.pending.read_text(encoding="utf-8", errors="replace").splitlines():
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as exc:
                self._dead.put(f"spool line is not JSON: {exc.msg}", raw=raw)
                continue
            if not isinstance(item, dict) or not isinstance(item.get("op"), str):
                self._dead.put("spool line is not a store operation", raw=raw)
                continue
            records.append(sanitize(item))  # type: ignore[arg-type]  # spooled by an older version
        return records

    def keep(self, records: list[Record]) -> None:
        """Replaces the pending file with `records` (those not yet written), atomically."""
        if not records:
            self.pending.unlink(missing_ok=True)
            return
        tmp = self.pending.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(_line(r) for r in records)
        os.replace(tmp, self.pending)

    def fold_overflow(self) -> None:
        """Moves overflow records behind the pending ones (the caller guarantees nothing older is queued)."""
        if not self.overflow.exists():
            return
        if not self.pending.exists():
            os.replace(self.overflow, self.pending)
            return
        with self.overflow.open("r", encoding="utf-8", errors="replace") as src, \
                self.pending.open("a", encoding="utf-8") as dst:
            for raw in src:
                dst.write(raw if raw.endswith("\n") else raw + "\n")
        self.overflow.unlink()
