"""Every FreeSWITCH XML file we ship parses, and the actions the controller relies on are there."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
XML_FILES = sorted([*ROOT.glob("dialplan/**/*.xml"), *ROOT.glob("freeswitch/**/*.xml")])
# What the controller sets with uuid_setvar before it transfers the call (agent/call, freeswitch.md §5).
CONTROLLER_VARS = {"escalation_reason", "ai_summary", "ai_call_id", "ai_priority"}


def actions(ext: ET.Element) -> list[tuple[str, str]]:
    return [(a.get("application", ""), a.get("data", "")) for a in ext.iter("action")]


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_parses(path: Path) -> None:
    ET.parse(path)


def test_there_are_files() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in XML_FILES}
    assert {"dialplan/public/00_callagent.xml", "dialplan/ai_escalation.xml", "freeswitch/vars.xml",
            "freeswitch/autoload_configs/event_socket.conf.xml", "freeswitch/autoload_configs/callcenter.conf.xml",
            "freeswitch/autoload_configs/modules.conf.xml"} <= names


def test_inbound_dids_go_to_the_agent_then_fall_back_to_humans() -> None:
    extensions = ET.parse(ROOT / "dialplan/public/00_callagent.xml").getroot().iter("extension")
    industries = set()
    for ext in extensions:
        acts = actions(ext)
        apps = [a for a, _ in acts]
        data = dict(acts)
        industries.add(next(d.split("=", 1)[1] for a, d in acts if d.startswith("callagent_industry=")))
        assert ("set", "playback_terminators=none") in acts
        sock = apps.index("socket")
        hosts, *flags = data["socket"].split()
        assert flags == ["async", "full"]
        assert hosts.split("|") == ["127.0.0.1:8084", "127.0.0.1:8085"]
        assert apps.index("set", 0) < sock  # industry etc. are set before the agent is reached
        after = acts[sock + 1:]
        assert ("transfer", "human XML ai_escalation") in after
    assert industries == {"ecommerce", "banking", "telecom"}


def test_escalation_context_queues_for_humans_with_the_controller_vars() -> None:
    root = ET.parse(ROOT / "dialplan/ai_escalation.xml").getroot()
    [ctx] = [c for c in root.iter("context") if c.get("name") == "ai_escalation"]
    by_name = {e.get("name"): e for e in ctx.iter("extension")}
    human = by_name["human"]
    cond = human.find("condition")
    assert cond.get("field") == "destination_number" and cond.get("expression") == "^human$"
    acts = actions(human)
    exported = next(d for a, d in acts if d.startswith("cc_export_vars="))
    assert set(exported.split("=", 1)[1].split(",")) == CONTROLLER_VARS
    apps = [a for a, _ in acts]
    assert ("callcenter", "support@default") in acts
    assert any(d.startswith("cc_exit_keys=") for _, d in acts)
    assert any(d.startswith("hold_music=") or d.startswith("cc_moh_override=") for _, d in acts)
    assert apps.index("callcenter") < apps.index("transfer")  # timeout / exit key continue the dialplan
    # Queue exit: voicemail or a callback request.
    group = actions(by_name["group"])
    assert any(a == "voicemail" for a, _ in group)
    assert any(a == "event" and "callback_request" in d for a, d in actions(by_name["callback"]))


def test_event_socket_is_loopback_with_password_from_vars() -> None:
    params = {p.get("name"): p.get("value")
              for p in ET.parse(ROOT / "freeswitch/autoload_configs/event_socket.conf.xml").getroot().iter("param")}
    assert params["listen-ip"] == "127.0.0.1"
    assert params["password"] == "$${esl_password}"
    assert params["apply-inbound-acl"]
    assert params["stop-on-bind-error"] == "true"
    vars_xml = (ROOT / "freeswitch/vars.xml").read_text(encoding="utf-8")
    assert "esl_password=CALLAGENT_ESL_PASSWORD" in vars_xml and "ClueCon" not in vars_xml


def test_callcenter_queue_agents_and_tiers() -> None:
    root = ET.parse(ROOT / "freeswitch/autoload_configs/callcenter.conf.xml").getroot()
    assert [q.get("name") for q in root.iter("queue")] == ["support@default"]
    agents = {a.get("name") for a in root.iter("agent")}
    tiers = list(root.iter("tier"))
    assert agents and tiers and {t.get("agent") for t in tiers} <= agents
    assert all(t.get("queue") == "support@default" for t in tiers)


def test_modules_snippet_loads_what_the_flow_needs() -> None:
    loaded = {m.get("module") for m in ET.parse(ROOT / "freeswitch/autoload_configs/modules.conf.xml").getroot()
              .iter("load")}
    assert {"mod_audio_fork", "mod_callcenter", "mod_event_socket", "mod_sndfile", "mod_commands", "mod_dptools",
            "mod_expr", "mod_voicemail"} <= loaded
