"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh migrated database per test."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agent.ops.logs import CALL_ID, CallIdFilter, QuietConnectionErrors
from agent.store.db import Database, embedded_dsn

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "speech"


# A server already running (tools/mutation/run.py starts one for a whole mutation run): reused, not started.
PG_DSN_ENV = "CALLAGENT_TEST_PG_DSN"
# The process that first loaded this file: pytest loads it again on each run in one process, so it is kept on
# `sys`, which a forked child inherits.
FIRST_PID: int = sys.__dict__.setdefault("callagent_tests_first_pid", os.getpid())


def pytest_configure(config: pytest.Config) -> None:
    """A run forked from a process that already ran the tests (mutmut forks one child per mutant) would share
    that process's gevent loop, its epoll descriptor included: every wait in the child then hangs in the hub.
    The child gets a loop of its own."""
    if os.getpid() != FIRST_PID and "gevent" in sys.modules:
        import gevent

        gevent.reinit()


@pytest.fixture(autouse=True)
def _no_call_id_left_bound() -> Iterator[None]:
    """A test that drives a call session on the main thread binds that call's id there (in production each call
    has its own greenlet); the tests after it must not log under that id."""
    CALL_ID.set(None)
    yield
    CALL_ID.set(None)


@pytest.fixture(autouse=True)
def _no_log_handler_left_installed() -> Iterator[None]:
    """A test of `configure_logging` installs the product's root handler (its stream closed after the test); left
    in place, it would rewrite the records of every later test (the quiet filter turns a traceback logged outside
    a call into one warning line) before pytest's own capture sees them."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and any(isinstance(f, (CallIdFilter, QuietConnectionErrors)) for f in handler.filters):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory) -> str:
    return os.environ.get(PG_DSN_ENV) or embedded_dsn(tmp_path_factory.mktemp("pg"))


@pytest.fixture
def db(pg_server_dsn) -> Iterator[Database]:
    """A new database with every migration applied."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = psycopg.conninfo.make_conninfo(pg_server_dsn, dbname=name)
    database = Database(dsn)
    database.migrate()
    yield database
    if os.environ.get(PG_DSN_ENV):  # a shared server outlives hundreds of test runs: don't let it fill the disk
        with contextlib.suppress(psycopg.Error), psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def speech_dir() -> Path:
    if not SPEECH.is_dir():
        pytest.skip(f"real speech recordings not found at {SPEECH} (../shared/speech is absent)")
    return SPEECH


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """CI has the recordings: a test that skips there for want of ../shared/speech is a failure, not a skip."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not SPEECH.is_dir() or \
            os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if "shared/speech" in reason or "speech recordings" in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped although CI=true and {SPEECH} exists: {reason}"
