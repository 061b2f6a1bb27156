"""The database handle: migrations applied once each, in order, each alone; connections with dict rows, a
statement timeout and a transaction per `connection()`; the watchdog cutting a hung statement; which failures
count as an outage (retry later) rather than a refusal; the DSN chosen from the configuration."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from agent.config import parse_config
from agent.store import db as store_db
from agent.store.db import Database, Watchdog, embedded_dsn, is_outage, open_database, resolve_dsn


def _empty_database(db: Database) -> Database:
    """A second database on the same server, with nothing applied."""
    name = "m_" + uuid.uuid4().hex[:12]
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return Database(psycopg.conninfo.make_conninfo(db.dsn, dbname=name))


def _tables(db: Database) -> set[str]:
    with db.connection() as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r["tablename"] for r in rows}


def test_migrations_apply_in_order_once_each_and_are_recorded(db: Database, tmp_path: Path) -> None:
    fresh = _empty_database(db)
    (tmp_path / "002_b.sql").write_text("INSERT INTO a VALUES ('두 번째');", encoding="utf-8")
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (v text);", encoding="utf-8")
    (tmp_path / "01_skipped.sql").write_text("CREATE TABLE skipped_1 (v int);")
    (tmp_path / "003_x.txt").write_text("CREATE TABLE skipped_2 (v int);")
    assert fresh.migrate(tmp_path) == ["001_a.sql", "002_b.sql"]
    assert fresh.migrate(tmp_path) == []
    with fresh.connection() as conn:
        assert conn.execute("SELECT v FROM a").fetchall() == [{"v": "두 번째"}]
        names = conn.execute("SELECT name, applied_at IS NOT NULL AS at FROM schema_migrations ORDER BY name")
        assert names.fetchall() == [{"name": "001_a.sql", "at": True}, {"name": "002_b.sql", "at": True}]
    assert _tables(fresh) == {"a", "schema_migrations"}


def test_a_failing_migration_keeps_the_ones_before_it(db: Database, tmp_path: Path) -> None:
    fresh = _empty_database(db)
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (v text);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (v int); SELECT * FROM missing_table;")
    with pytest.raises(psycopg.errors.UndefinedTable):
        fresh.migrate(tmp_path)
    assert _tables(fresh) == {"a", "schema_migrations"}  # 002 left nothing behind
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE b (v int);")
    assert fresh.migrate(tmp_path) == ["002_bad.sql"]


def test_the_shipped_migrations_build_the_schema(db: Database) -> None:
    fresh = _empty_database(db)
    applied = fresh.migrate()
    assert applied == sorted(p.name for p in store_db.SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    assert {"calls", "turns", "call_events", "crm_orders", "kb_chunks"} <= _tables(fresh)


def test_connections_give_dict_rows_and_an_optional_statement_timeout(db: Database) -> None:
    with db.connect() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "0"}
        assert conn.info.get_parameters().get("connect_timeout") == "5"
    with db.connect(statement_timeout_ms=1500, connect_timeout_s=3) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "1500ms"}
        assert conn.info.get_parameters().get("connect_timeout") == "3"


def test_connection_commits_on_success_rolls_back_on_error_and_closes(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert conn.closed
    with pytest.raises(RuntimeError), db.connection() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("caller failed")
    assert conn.closed
    with db.connection() as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [{"v": 1}]


def test_the_watchdog_cuts_a_statement_past_its_deadline_and_only_that_one(db: Database) -> None:
    watchdog = Watchdog()
    with db.connect() as conn, watchdog.guard(conn, 60):
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert watchdog.cuts == 0
    with db.connect() as conn, pytest.raises(psycopg.OperationalError), watchdog.guard(conn, 0.3):
        conn.execute("SELECT pg_sleep(60)")  # a hung server: only the cut ends the wait
    assert watchdog.cuts == 1
    with db.connect() as conn, pytest.raises(psycopg.OperationalError), watchdog.guard(conn, 0.3):
        conn.execute("SELECT pg_sleep(60)")
    assert watchdog.cuts == 2  # counted for the metrics (db_cuts)


def test_the_watchdog_thread_never_keeps_the_process_alive() -> None:
    before = set(threading.enumerate())
    Watchdog()
    (thread,) = set(threading.enumerate()) - before
    assert thread.name == "db-watchdog" and thread.daemon


@pytest.mark.parametrize(("exc", "outage"), [
    (psycopg.OperationalError("down"), True), (psycopg.InterfaceError("closed"), True),
    (ConnectionRefusedError(), True), (TimeoutError(), True),
    (psycopg.errors.CheckViolation("speaker"), False), (psycopg.DataError("bad time"), False),
    (ValueError("x"), False)])
def test_outage_or_refusal(exc: BaseException, outage: bool) -> None:
    assert is_outage(exc) is outage


def test_the_configured_dsn_wins_and_open_database_migrates(db: Database, tmp_path: Path) -> None:
    params = psycopg.conninfo.conninfo_to_dict(_empty_database(db).dsn)
    fresh = Database(psycopg.conninfo.make_conninfo("", dbname=params.pop("dbname"), **params))
    cfg = parse_config({"store": {"dsn": fresh.dsn}}, base_dir=str(tmp_path))
    assert resolve_dsn(cfg) == fresh.dsn
    assert open_database(cfg, migrate=False).dsn == fresh.dsn and _tables(fresh) == set()
    assert "calls" in _tables(open_database(cfg))


def _stop(data: Path) -> None:
    pid = data / "postmaster.pid"
    if pid.exists():
        os.kill(int(pid.read_text().split()[0]), signal.SIGTERM)


def test_each_data_folder_has_its_own_embedded_server_started_once(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="callagent-dbtest-"))
    nested, existing = root / "var" / "pg", root / "pg2"  # a folder to create with its parent, one already there
    existing.mkdir()
    try:
        first = embedded_dsn(nested)
        assert embedded_dsn(nested) == first and nested.is_dir()
        second = embedded_dsn(existing)
        assert second != first
        for dsn, folder in ((first, nested), (second, existing)):
            with psycopg.connect(dsn, autocommit=True) as conn:
                assert conn.execute("SHOW data_directory").fetchone()[0] == str(folder.resolve())
        cfg = parse_config({"store": {"embedded_dir": "var/pg"}}, base_dir=str(root))
        assert resolve_dsn(cfg) == first
    finally:
        _stop(nested)
        _stop(existing)


def test_migrations_and_cuts_are_logged_for_the_operator(db: Database, tmp_path: Path, caplog) -> None:
    fresh = _empty_database(db)
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (v text);")
    with caplog.at_level(logging.INFO, logger="agent.store.db"):
        fresh.migrate(tmp_path)
        watchdog = Watchdog()
        with db.connect() as conn, pytest.raises(psycopg.OperationalError), watchdog.guard(conn, 0.3):
            conn.execute("SELECT pg_sleep(60)")
        closed = db.connect()
        closed.close()
        watchdog._cut(closed)  # a connection already gone: nothing to cut, and said so
    assert watchdog.cuts == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == ["applied migration 001_a.sql", "database statement past its deadline: connection cut"]
    assert lines[2].startswith("could not cut a hung database connection: ") and len(lines[2]) > 42
