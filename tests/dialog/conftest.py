"""Fixtures for the dialog tests: one embedded PostgreSQL per session, a fresh migrated database per
module, the sample KBs indexed, and a scripted policy per pack on the real demo CRM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dialog_support import FakeClock

from agent.dialog.knowledge import index_paths
from agent.dialog.packs import load_pack
from agent.store.db import Database, embedded_dsn


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("CALLAGENT_TEST_PG_DSN"):  # a server kept up for a whole mutation run (tests/conftest.py)
        yield os.environ["CALLAGENT_TEST_PG_DSN"]
        return
    data_dir = tmp_path_factory.mktemp("dialog-pg")
    try:
        dsn = embedded_dsn(data_dir)
    except (subprocess.CalledProcessError, OSError):
        # pgserver runs PostgreSQL as another user after opening up the parent folders; a concurrent pytest
        # session resets pytest's base folder to 0700, so fall back to a folder directly under /tmp.
        data_dir = Path(tempfile.mkdtemp(prefix="callagent-dialog-pg-"))
        dsn = embedded_dsn(data_dir)
    yield dsn
    _stop_postgres(data_dir)


def _stop_postgres(data_dir: Path) -> None:
    """Stops the server this session started (its pid is the first line of postmaster.pid)."""
    pid_file = data_dir / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


@pytest.fixture(scope="module")
def db(pg_dsn: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    name = "t_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1]).lower()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(psycopg.conninfo.make_conninfo(pg_dsn, dbname=name))
    database.migrate()
    yield database


@pytest.fixture(scope="module")
def indexed(db: Database) -> Database:
    for pack in ("ecommerce", "banking", "telecom"):
        index_paths(db, load_pack(pack).kb_files(), pack)
    return db


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
