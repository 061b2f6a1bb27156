"""The project's own dialplan XML as FreeSWITCH reads it: pre-processor globals, then extension hunting.

- vars.xml: `<X-PRE-PROCESS cmd="set|env-set|exec-set" data="name=value"/>` (switch_xml.c preprocess);
  `env-set` reads the environment only when the value starts with `$` (preprocess_env_set,
  freeswitch.md §10); `$${name}` is replaced at load time, an unset name by nothing (expand_vars).
- mod_dialplan_xml: extensions in document order; each condition's regex against `destination_number`,
  `${var}` or a variable; `$1…` from the last match; `continue="true"` keeps hunting (§5).
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIALPLAN = REPO / "dialplan"
DEFAULT_VARS = REPO / "freeswitch" / "vars.xml"
# Globals a stock FreeSWITCH defines before vars.xml is read (switch_core.c switch_core_set_globals).
BASE_GLOBALS = {"sounds_dir": "/usr/share/freeswitch/sounds", "base_dir": "/usr",
                "conf_dir": "/etc/freeswitch", "temp_dir": "/tmp", "domain": "127.0.0.1",
                "domain_name": "127.0.0.1", "local_ip_v4": "127.0.0.1"}
_PRE = re.compile(r'<X-PRE-PROCESS\s+cmd="([^"]*)"\s+data="([^"]*)"\s*/>', re.IGNORECASE)
_GLOBAL = re.compile(r"\$\$\{([^}]*)\}")
_INNER = re.compile(r"\$\{([^${}]*)\}")
_FUNC = re.compile(r"^(\w+)\((.*)\)$", re.DOTALL)
_ARITH = re.compile(r"^[\d\s+\-*/().]+$")


def preprocess(text: str, globals_: dict[str, str], env: Mapping[str, str] | None = None, *,
               allow_exec: bool = False) -> str:
    """Runs the X-PRE-PROCESS lines of `text` into `globals_` and returns the text with `$${…}` replaced."""
    env = os.environ if env is None else env
    out = []
    # Line by line and before any XML parsing, so a tag inside an XML comment still runs (as on FreeSWITCH).
    for line in text.splitlines(keepends=True):
        line = _GLOBAL.sub(lambda m: globals_.get(m.group(1), ""), line)
        match = _PRE.search(line)
        if match is None:
            out.append(line)
            continue
        cmd, data = match.group(1).lower(), match.group(2)
        name, sep, value = data.partition("=")
        if not sep:
            continue
        if cmd == "set":
            globals_[name.strip()] = value.strip(" ")
        elif cmd == "env-set":
            # `*val++ == '$'`: anything else is silently ignored, so the variable stays unset.
            if value.startswith("$") and value[1:] in env:
                globals_[name] = env[value[1:]]
        elif cmd == "exec-set" and allow_exec:
            done = subprocess.run(value.strip(), shell=True, capture_output=True, text=True, timeout=10,
                                  check=False)
            result = done.stdout.rstrip(" \n")
            if done.returncode == 0 and result:
                globals_[name.strip()] = result
    return "".join(out)


def load_globals(vars_xml: Path = DEFAULT_VARS, env: Mapping[str, str] | None = None, *,
                 allow_exec: bool = False) -> dict[str, str]:
    """The global variables after FreeSWITCH has read `vars_xml`."""
    globals_ = dict(BASE_GLOBALS)
    if vars_xml.is_file():
        preprocess(vars_xml.read_text(encoding="utf-8"), globals_, env, allow_exec=allow_exec)
    return globals_


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """switch_channel_expand_variables: innermost `${…}` first; `${expr(…)}` evaluates arithmetic and any
    other `${func(…)}` the simulator does not run expands to nothing."""
    for _ in range(16):
        new = _INNER.sub(lambda m: _one(m.group(1), lookup), text)
        if new == text:
            return new
        text = new
    return text


def _one(inner: str, lookup: Callable[[str], str | None]) -> str:
    func = _FUNC.match(inner)
    if func is None:
        return lookup(inner) or ""
    if func.group(1) == "expr" and _ARITH.match(func.group(2)):
        try:
            value = eval(func.group(2), {"__builtins__": {}}, {})  # noqa: S307 (digits and + - * / ( ) only)
        except (SyntaxError, ZeroDivisionError):
            return ""
        return str(int(value)) if float(value).is_integer() else str(value)
    return ""


@dataclass(frozen=True)
class Action:
    app: str
    data: str


@dataclass(frozen=True)
class Condition:
    field: str | None
    expression: str | None
    actions: tuple[Action, ...]
    anti_actions: tuple[Action, ...]


@dataclass(frozen=True)
class Extension:
    name: str
    cont: bool
    conditions: tuple[Condition, ...]

    def has_app(self, app: str) -> bool:
        return any(a.app == app for c in self.conditions for a in c.actions)


@dataclass
class Dialplan:
    contexts: dict[str, list[Extension]] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path = DEFAULT_DIALPLAN, vars_xml: Path = DEFAULT_VARS,
             env: Mapping[str, str] | None = None) -> Dialplan:
        """`root/public/*.xml` form context `public` (as vanilla's public.xml includes them); every other
        `root/*.xml` holds its own `<context name=…>`."""
        plan = cls(globals=load_globals(vars_xml, env))
        for path in sorted(root.glob("public/*.xml")):
            plan.contexts.setdefault("public", []).extend(plan._parse(path, "public"))
        for path in sorted(root.glob("*.xml")):
            plan._parse(path, None)
        return plan

    def _parse(self, path: Path, context: str | None) -> list[Extension]:
        text = preprocess(path.read_text(encoding="utf-8"), dict(self.globals), {})
        tree = ET.fromstring(text)
        if context is not None:
            return [_extension(e) for e in tree.iter("extension")]
        for ctx in tree.iter("context"):
            self.contexts.setdefault(ctx.get("name", ""), []).extend(_extension(e) for e in ctx.iter("extension"))
        return []

    def hunt(self, context: str, lookup: Callable[[str], str | None]) -> tuple[list[Action], list[str]]:
        """dialplan_hunt: the actions to run and the names of the extensions that matched."""
        actions: list[Action] = []
        matched: list[str] = []
        for ext in self.contexts.get(context, []):
            got = _parse_exten(ext, lookup)
            if got is None:
                continue
            actions += got
            matched.append(ext.name)
            if not ext.cont:
                break
        return actions, matched

    def first_with(self, context: str, app: str) -> Extension | None:
        return next((e for e in self.contexts.get(context, []) if e.has_app(app)), None)


def _extension(node: ET.Element) -> Extension:
    conds = []
    for c in node.findall("condition"):
        acts = tuple(Action(a.get("application", ""), a.get("data", "")) for a in c.findall("action"))
        anti = tuple(Action(a.get("application", ""), a.get("data", "")) for a in c.findall("anti-action"))
        conds.append(Condition(c.get("field"), c.get("expression"), acts, anti))
    return Extension(node.get("name", ""), node.get("continue", "false") == "true", tuple(conds))


def _parse_exten(ext: Extension, lookup: Callable[[str], str | None]) -> list[Action] | None:
    """parse_exten with break="on-false": the first failing condition ends the extension (anti-actions
    still run); None when the extension did not match."""
    out: list[Action] = []
    for cond in ext.conditions:
        if cond.field is None or cond.expression is None:
            out += cond.actions
            continue
        value = expand(cond.field, lookup) if "${" in cond.field else (lookup(cond.field) or "")
        match = re.search(cond.expression, value)
        if match is None:
            return out + list(cond.anti_actions) if cond.anti_actions else None
        out += [Action(a.app, _captures(a.data, match)) for a in cond.actions]
    return out


def _captures(data: str, match: re.Match[str]) -> str:
    return re.sub(r"\$(\d)", lambda m: (match.group(int(m.group(1))) or "")
                  if int(m.group(1)) <= (match.re.groups or 0) else "", data)
