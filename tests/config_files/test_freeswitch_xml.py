"""Every FreeSWITCH XML file we ship parses, and the actions the controller relies on are there."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent.sim.dialplan import Dialplan, load_globals, preprocess

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
        if "socket" not in apps:       # E.164 → national form, routed again in this context
            assert apps == ["transfer"] and data["transfer"].endswith(" XML public")
            continue
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


def _event_socket_password(env: dict[str, str], *, allow_exec: bool) -> str:
    """The password mod_event_socket ends up with after FreeSWITCH pre-processes vars.xml, then this file."""
    globals_ = load_globals(ROOT / "freeswitch/vars.xml", env, allow_exec=allow_exec)
    text = preprocess((ROOT / "freeswitch/autoload_configs/event_socket.conf.xml").read_text(encoding="utf-8"),
                      globals_, env)
    params = {p.get("name"): p.get("value") for p in ET.fromstring(text).iter("param")}
    return params["password"] or "ClueCon"        # mod_event_socket's default for an empty value


def test_event_socket_is_loopback_with_password_from_the_environment() -> None:
    params = {p.get("name"): p.get("value")
              for p in ET.parse(ROOT / "freeswitch/autoload_configs/event_socket.conf.xml").getroot().iter("param")}
    assert params["listen-ip"] == "127.0.0.1"
    assert params["password"] == "$${esl_password}"
    assert params["apply-inbound-acl"]
    assert params["stop-on-bind-error"] == "true"
    secret = "x7-Uq.9Lr2-example"
    assert _event_socket_password({"CALLAGENT_ESL_PASSWORD": secret}, allow_exec=True) == secret
    # Without the variable the socket gets a random password, never the well-known default.
    unset = _event_socket_password({}, allow_exec=True)
    assert unset != "ClueCon" and len(unset) >= 32
    assert unset != _event_socket_password({}, allow_exec=True)


def test_env_set_reads_the_environment_only_for_a_dollar_value() -> None:
    """The 1.10 rule the shipped file relies on (switch_xml.c preprocess_env_set)."""
    env = {"CALLAGENT_ESL_PASSWORD": "from-env"}
    literal: dict[str, str] = {}
    preprocess('<X-PRE-PROCESS cmd="env-set" data="esl_password=CALLAGENT_ESL_PASSWORD"/>\n', literal, env)
    assert "esl_password" not in literal          # taken as nothing at all: ClueCon stays in force
    dollar: dict[str, str] = {}
    preprocess('<X-PRE-PROCESS cmd="env-set" data="esl_password=$CALLAGENT_ESL_PASSWORD"/>\n', dollar, env)
    assert dollar["esl_password"] == "from-env"
    plain: dict[str, str] = {}
    preprocess('<X-PRE-PROCESS cmd="set" data="esl_password=$CALLAGENT_ESL_PASSWORD"/>\n', plain, env)
    assert plain["esl_password"] == "$CALLAGENT_ESL_PASSWORD"   # `set` never reads the environment


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


TRUNK_ENV = {"CALLAGENT_KR_TRUNK_USERNAME": "0215881000", "CALLAGENT_KR_TRUNK_PASSWORD": "kr-secret",
             "CALLAGENT_KR_TRUNK_PROXY": "sip.carrier.example.kr", "CALLAGENT_INTL_TRUNK_USERNAME": "acct1",
             "CALLAGENT_INTL_TRUNK_PASSWORD": "intl-secret", "CALLAGENT_INTL_TRUNK_PROXY": "sip.provider.example"}


@pytest.mark.parametrize(("name", "prefix"), [("kr_carrier", "CALLAGENT_KR_TRUNK"),
                                              ("intl_provider", "CALLAGENT_INTL_TRUNK")])
def test_trunk_gateways_take_credentials_from_the_environment(name: str, prefix: str) -> None:
    [path] = [p for p in (ROOT / "freeswitch/sip_profiles/external").glob("*.xml") if name in p.read_text()]
    raw = path.read_text(encoding="utf-8")
    assert "-secret" not in raw and "$${" in raw
    globals_ = load_globals(ROOT / "freeswitch/vars.xml", TRUNK_ENV)
    [gw] = ET.fromstring(preprocess(raw, globals_, TRUNK_ENV)).iter("gateway")
    params = {p.get("name"): p.get("value") for p in gw.iter("param")}
    assert gw.get("name") == name
    assert params["username"] == TRUNK_ENV[f"{prefix}_USERNAME"]
    assert params["password"] == TRUNK_ENV[f"{prefix}_PASSWORD"]
    assert params["proxy"] == params["realm"] == TRUNK_ENV[f"{prefix}_PROXY"]
    assert params["context"] == "public" and params["extension"] == "auto_to_user"
    assert {"PCMU", "PCMA"} <= set(params["codec-prefs"].split(","))


@pytest.mark.parametrize(("dialled", "extension", "did"), [
    ("15881000", "callagent_ecommerce", "15881000"), ("0215882000", "callagent_banking", "0215882000"),
    ("+8215883000", "callagent_telecom", "15883000"), ("+82215881000", "callagent_ecommerce", "0215881000"),
    ("8215882000", "callagent_banking", "15882000")])
def test_trunk_dids_reach_the_agent_extensions(dialled: str, extension: str, did: str) -> None:
    """Routed the way mod_dialplan_xml hunts the public context (E.164 is re-routed in national form)."""
    plan = Dialplan.load(ROOT / "dialplan", ROOT / "freeswitch/vars.xml", env={})
    dest = dialled
    for _ in range(3):
        acts, matched = plan.hunt("public", {"destination_number": dest}.get)
        if any(a.app == "socket" for a in acts):
            break
        [(app, data)] = [(a.app, a.data) for a in acts]
        assert app == "transfer" and data.endswith(" XML public")
        dest = data.split()[0]
    assert matched == [extension] and ("set", f"ai_did={did}") in [(a.app, a.data) for a in acts]
