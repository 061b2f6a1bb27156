"""The `dialog:` block of callagent.yaml, validated at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.config import Section

POLICIES = ("scripted", "llm")
PACKS = ("ecommerce", "banking", "telecom")


@dataclass(frozen=True)
class DialogSettings:
    policy: str = "scripted"
    pack: str = "ecommerce"


def parse_dialog_settings(data: Mapping[str, Any]) -> DialogSettings:
    s = Section(data, "dialog")
    d = DialogSettings()
    settings = DialogSettings(
        policy=s.choice("policy", POLICIES, d.policy),
        pack=s.choice("pack", PACKS, d.pack),
    )
    s.done()
    return settings
