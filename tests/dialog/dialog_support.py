"""Helpers shared by the dialog tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from agent.dialog.knowledge import KnowledgeBase
from agent.dialog.packs import load_pack
from agent.dialog.scripted import ScriptedPolicy
from agent.dialog.settings import parse_dialog_settings
from agent.store.crm import EmbeddedCrm
from agent.store.db import Database


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def scripted(db: Database | None, pack: str = "ecommerce", clock: FakeClock | None = None,
             **dialog: object) -> ScriptedPolicy:
    settings = parse_dialog_settings({"pack": pack, **dialog})
    return ScriptedPolicy(settings=settings, pack=load_pack(pack),
                          crm=EmbeddedCrm(db) if db is not None else None,
                          kb=KnowledgeBase(db, pack) if db is not None else None,
                          clock=clock or FakeClock(), today=date.today)


PACKS_DIR = Path(__file__).resolve().parents[2] / "agent" / "dialog" / "packs"
