"""A new migrated database per test for the tool tests that write to the demo CRM (the dialog folder's own `db`
is shared by a whole module), and the context a tool runs in."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from dialog_support import FakeClock

from agent.dialog.escalation import EscalationManager
from agent.dialog.packs import load_pack
from agent.dialog.policy import CallInfo
from agent.dialog.settings import EscalationSettings
from agent.dialog.state import DialogState
from agent.dialog.tools.base import ToolContext
from agent.store.db import Database


def fresh_database(pg_dsn: str) -> Iterator[Database]:
    name = "tool_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    database = Database(psycopg.conninfo.make_conninfo(pg_dsn, dbname=name))
    database.migrate()
    yield database
    with contextlib.suppress(psycopg.Error), psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def tool_ctx(crm: Any, caller: str = "", pack: str = "ecommerce", *said: str) -> ToolContext:
    state = DialogState(call=CallInfo(call_id="t1", caller=caller), pack=load_pack(pack), clock=FakeClock())
    for text in said:
        state.add_caller(text)
    return ToolContext(state=state, crm=crm, kb=None, escalation=EscalationManager(EscalationSettings()))
