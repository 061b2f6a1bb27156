"""Industry packs: `packs/<name>/pack.yaml` (persona, system prompt, tools, greeting, security rules) and an
optional `kb/` folder of Markdown that `callagent kb index` or the start-up indexer loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from agent.config_reader import ConfigError, Section
from agent.privacy import notice

PACKS_DIR = Path(__file__).resolve().parent
VERIFICATIONS = ("phone_or_name_last4", "birth_date_account_last4", "none")
KNOWN_TOOLS = ("lookup_order", "check_delivery", "process_return", "search_faq", "update_customer_info",
               "escalate_to_human", "verify_identity", "lookup_account")
AI_DISCLOSURE_WORDS = notice.AI_DISCLOSURE_WORDS


@dataclass(frozen=True)
class Pack:
    name: str
    display_name: str
    company: str
    agent_name: str
    voice: str
    hotwords: str
    greeting: str
    verification: str
    tools: tuple[str, ...]
    sensitive_keywords: tuple[str, ...]
    system_prompt: str
    kb_dir: Path

    def kb_files(self) -> list[Path]:
        return sorted(p for p in self.kb_dir.glob("*.md")) if self.kb_dir.is_dir() else []


def parse_pack(data: object, name: str, base: Path) -> Pack:
    s = Section(data if isinstance(data, dict) else None, f"pack.{name}")
    tools = s.str_list("tools")
    for tool in tools:
        if tool not in KNOWN_TOOLS:
            raise ConfigError(s.key("tools"), f"unknown tool {tool!r}")
    greeting = " ".join(s.str("greeting").split())
    # Callers must be told they are talking to an AI, and that the call is kept, before anything else (the
    # greeting is that moment). A pack is used with recording on or off, so it may not claim either for sure.
    problem = notice.greeting_problem(greeting)
    if problem is None and notice.greeting_problem(greeting, recording=False) is not None:
        problem = "says the call is recorded (녹음됩니다); a pack must fit recording on and off (녹음될 수 있습니다)"
    if problem is not None:
        raise ConfigError(s.key("greeting"), problem)
    pack = Pack(
        name=s.str("name", name),
        display_name=s.str("display_name"),
        company=s.str("company"),
        agent_name=s.str("agent_name"),
        voice=s.str("voice"),
        hotwords=s.str("hotwords"),
        greeting=greeting,
        verification=s.choice("verification", VERIFICATIONS),
        tools=tools,
        sensitive_keywords=s.str_list("sensitive_keywords", ()),
        system_prompt=s.str("system_prompt").strip(),
        kb_dir=base / "kb",
    )
    s.done()
    return pack


@cache
def load_pack(name: str) -> Pack:
    path = PACKS_DIR / name / "pack.yaml"
    if not path.is_file():
        raise ConfigError("dialog.pack", f"no pack named {name!r} (looked for {path})")
    return parse_pack(yaml.safe_load(path.read_text(encoding="utf-8")), name, path.parent)
