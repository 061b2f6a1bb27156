"""One embedded PostgreSQL per session for the privacy tests, with the same fallback as tests/dialog: pgserver
opens up the parents of its data folder, and a concurrent pytest session may reset pytest's base folder to
0700, so on failure the server gets a folder directly under /tmp."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from agent.store.db import embedded_dsn


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        return embedded_dsn(tmp_path_factory.mktemp("privacy-pg"))
    except (subprocess.CalledProcessError, OSError):
        return embedded_dsn(Path(tempfile.mkdtemp(prefix="callagent-privacy-pg-")))
