"""Call scripts for the simulated caller: dataclass steps and the YAML file format.

YAML: `{name, caller, destination, variables, steps: [{say_text: "..."}, {wait_idle: {}}, hangup, ...]}`.
Relative audio paths resolve against the YAML's folder; `$SPEECH/` against `<repo>/../shared/speech`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPEECH_PREFIX = "$SPEECH/"
DEFAULT_TIMEOUT_S = 30.0


class ScenarioError(ValueError):
    """A call script that cannot run: names the step and what is wrong with it."""


def speech_dir() -> Path:
    """`<repo>/../shared/speech`, where the project's real recordings live."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "speech"


@dataclass(frozen=True)
class WaitIdle:
    """Until nothing plays or is queued for `settle_ms` (call time)."""

    settle_ms: int = 300
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class WaitPlayback:
    """Until a playback is running (or starts)."""

    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class SayAudio:
    """Stream a recording (plus ~1.2 s of silence); `inject_text` makes the worker skip ASR for it."""

    path: Path
    inject_text: str | None = None


@dataclass(frozen=True)
class SayText:
    """espeak-ng renders the text for realistic timing; the worker gets the text itself by injection."""

    text: str


@dataclass(frozen=True)
class BargeIn:
    """Wait for the agent to be talking, wait `after_ms`, then speak over it (text or recording)."""

    text: str | None = None
    path: Path | None = None
    after_ms: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Dtmf:
    """Keypad digits: RFC 2833 events (the default), or `inband` tones in the caller's audio that only a
    channel running `start_dtmf` reports."""

    digits: str
    inband: bool = False


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class ExpectTransfer:
    """Fails the script unless the agent transfers the call within `timeout_s`."""

    timeout_s: float = DEFAULT_TIMEOUT_S


Step = WaitIdle | WaitPlayback | SayAudio | SayText | BargeIn | Dtmf | Sleep | Hangup | ExpectTransfer
_STEP_TYPES = (WaitIdle, WaitPlayback, SayAudio, SayText, BargeIn, Dtmf, Sleep, Hangup, ExpectTransfer)


CODECS = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}


@dataclass(frozen=True)
class Echo:
    """Line/handset echo: what the caller hears comes back into the caller's audio, delayed and quieter."""

    delay_ms: int = 120
    gain_db: float = -12.0

    def __post_init__(self) -> None:
        if not 20 <= self.delay_ms <= 250:
            raise ScenarioError(f"echo delay_ms must be 20-250, got {self.delay_ms}")
        if not -30.0 <= self.gain_db <= -6.0:
            raise ScenarioError(f"echo gain_db must be -30 to -6, got {self.gain_db}")


@dataclass
class CallScript:
    caller: str = "01012345678"
    destination: str = "15881234"
    variables: dict[str, str] = field(default_factory=dict)
    steps: list[Any] = field(default_factory=list)
    name: str = ""
    base_dir: Path | None = None      # where relative audio paths resolve (default: the current folder)
    codec: str = "PCMU"               # the caller's leg: PCMU / PCMA at 8 kHz, G722 at 16 kHz
    echo: Echo | None = None          # echo of the agent's audio in the caller's stream
    queue_s: float = 2.0              # call seconds a transferred caller stays in the queue after the script

    def __post_init__(self) -> None:
        self.caller, self.destination = str(self.caller), str(self.destination)
        self.codec = str(self.codec).upper().replace(".", "")
        if self.codec not in CODECS:
            raise ScenarioError(f"codec must be one of {sorted(CODECS)}, got {self.codec!r}")
        if isinstance(self.echo, Mapping):
            self.echo = Echo(**self.echo)
        if self.queue_s < 0:
            raise ScenarioError(f"queue_s must be >= 0, got {self.queue_s}")
        if not isinstance(self.variables, Mapping):
            raise ScenarioError(f"variables must be a mapping, got {type(self.variables).__name__}")
        self.variables = {str(k): str(v) for k, v in self.variables.items()}
        self.steps = [parse_step(raw, i, self.base_dir) for i, raw in enumerate(self.steps)]


def resolve_audio(path: str | Path, base_dir: Path | None) -> Path:
    text = str(path)
    if text.startswith(SPEECH_PREFIX):
        return speech_dir() / text[len(SPEECH_PREFIX):]
    p = Path(text).expanduser()
    return p if p.is_absolute() else (base_dir or Path.cwd()) / p


def parse_step(raw: Any, index: int = 0, base_dir: Path | None = None) -> Step:
    """One step from its dataclass, a bare name (`hangup`) or a one-key mapping (`{say_text: "…"}`)."""
    if isinstance(raw, _STEP_TYPES):
        return raw
    if isinstance(raw, str):
        kind, arg = raw, None
    elif isinstance(raw, Mapping) and len(raw) == 1:
        kind, arg = next(iter(raw.items()))
    else:
        raise ScenarioError(f"step {index}: expected a step name or a one-key mapping, got {raw!r}")
    try:
        return _build(str(kind), arg, base_dir)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"step {index} ({kind}): {exc}") from exc


def _options(arg: Any, kind: str) -> dict[str, Any]:
    if arg is None:
        return {}
    if not isinstance(arg, Mapping):
        raise ValueError(f"{kind} takes a mapping of options, got {arg!r}")
    return dict(arg)


def _build(kind: str, arg: Any, base_dir: Path | None) -> Step:
    if kind == "wait_idle":
        opts = _options(arg, kind)
        return WaitIdle(settle_ms=int(opts.pop("settle_ms", 300)),
                        timeout_s=float(opts.pop("timeout_s", DEFAULT_TIMEOUT_S)), **opts)
    if kind == "wait_playback":
        return WaitPlayback(**{k: float(v) for k, v in _options(arg, kind).items()})
    if kind == "say_audio":
        opts = {"path": arg} if isinstance(arg, str | Path) else _options(arg, kind)
        if "path" not in opts:
            raise ValueError("say_audio needs a path")
        return SayAudio(path=resolve_audio(opts.pop("path"), base_dir), **opts)
    if kind == "say_text":
        if not isinstance(arg, str) or not arg.strip():
            raise ValueError("say_text needs non-empty text")
        return SayText(text=arg)
    if kind == "barge_in":
        opts = _options(arg, kind)
        if ("text" in opts) == ("path" in opts):
            raise ValueError("barge_in needs exactly one of text or path")
        path = resolve_audio(opts.pop("path"), base_dir) if "path" in opts else None
        return BargeIn(path=path, after_ms=int(opts.pop("after_ms", 0)),
                       timeout_s=float(opts.pop("timeout_s", DEFAULT_TIMEOUT_S)), **opts)
    if kind == "dtmf":
        opts = _options(arg, kind) if isinstance(arg, Mapping) else {"digits": arg}
        digits = str(opts.get("digits")) if opts.get("digits") is not None else ""
        if not digits or any(d not in "0123456789*#ABCD" for d in digits):
            raise ValueError(f"dtmf digits must be 0-9 * # A-D, got {arg!r}")
        return Dtmf(digits=digits, inband=bool(opts.get("inband", False)))
    if kind == "sleep":
        seconds = float(arg)
        if seconds < 0:
            raise ValueError("sleep must be >= 0 seconds")
        return Sleep(seconds=seconds)
    if kind == "hangup":
        _options(arg, kind)
        return Hangup()
    if kind == "expect_transfer":
        return ExpectTransfer(**{k: float(v) for k, v in _options(arg, kind).items()})
    raise ValueError(f"unknown step {kind!r}")


def load_script(path: str | Path) -> CallScript:
    """Reads one YAML call script; relative audio paths resolve against its folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{path}: expected a mapping at the top level")
    unknown = set(data) - {"name", "caller", "destination", "variables", "steps", "codec", "echo", "queue_s"}
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    try:
        return CallScript(caller=data.get("caller", "01012345678"),
                          destination=data.get("destination", "15881234"),
                          variables=data.get("variables") or {}, steps=list(data.get("steps") or []),
                          name=str(data.get("name") or path.stem), base_dir=path.parent.resolve(),
                          codec=data.get("codec", "PCMU"), echo=data.get("echo"),
                          queue_s=float(data.get("queue_s", 2.0)))
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
