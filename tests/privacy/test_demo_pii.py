"""`callagent demo` with the personal-data scenario (agent/scenarios/pii_ko.yaml) on a fresh data folder: after
the call, no secret the caller said or typed is in any PostgreSQL table, the spool, the printed call or the
log lines; the masked forms are there instead."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ops.cli import main
from agent.store.db import Database, embedded_dsn

SCENARIO = Path(__file__).resolve().parents[2] / "agent" / "scenarios" / "pii_ko.yaml"
SECRETS = ("0151", "4532015", "1234565", "일이삼사오육오", "hong.gildong", "구팔칠육", "98765432", "4321")


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A folder directly under /tmp: pgserver opens up the parents of its data folder, and a concurrent pytest
    session resets pytest's own base folder to 0700 (see tests/dialog/conftest.py)."""
    path = Path(tempfile.mkdtemp(prefix="callagent-privacy-demo-"))
    yield path
    with contextlib.suppress(OSError, ValueError, IndexError):  # stop the PostgreSQL the demo started
        os.kill(int((path / "var" / "pg" / "postmaster.pid").read_text().split()[0]), signal.SIGTERM)
    shutil.rmtree(path, ignore_errors=True)


def test_demo_leaves_no_secret_anywhere(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path = data_dir
    cfg = tmp_path / "callagent.yaml"
    # Generous deadlines: on a loaded machine a slow worker start must not turn the call into a hand-off.
    cfg.write_text("controller:\n  fork_connect_timeout_s: 30\n  turn_timeout_s: 60\n"
                   "  no_input_timeout_s: 120\n", encoding="utf-8")
    assert main(["--config", str(cfg), "demo", "--scenario", str(SCENARIO), "--json", "--speed", "4"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["ended_by"] == "transferred"
    texts = [t["text"] for t in printed["turns"] if t["speaker"] == "caller"]
    assert texts[:3] == ["제 카드번호는 [카드번호 ****0366] 이에요.", "주민번호는 [주민등록번호]입니다.",
                         "제 이메일은 [이메일] 이고 다른 연락처는 [전화번호 ****5432]예요."]
    db = Database(embedded_dsn(tmp_path / "var" / "pg"))
    dump = []
    with db.connection() as conn:
        for table in ("calls", "turns", "call_events", "recordings", "callbacks", "call_analytics"):
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (table,)).fetchone()["present"]:
                dump.append(json.dumps(conn.execute(f"SELECT * FROM {table}").fetchall(), ensure_ascii=False,
                                       default=str))
    spool = [p.read_text(encoding="utf-8") for p in (tmp_path / "var").rglob("*.jsonl")]
    assert "agent.call" in captured.err  # log lines were written, and are checked below
    for secret in SECRETS:
        for where, text in (("database", "\n".join(dump)), ("spool", "\n".join(spool)), ("log", captured.err),
                            ("printed call", captured.out)):
            assert secret not in text, (secret, where, text[max(0, text.find(secret) - 200):][:300])
