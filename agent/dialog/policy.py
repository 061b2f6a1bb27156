"""The dialog interface the call session talks to: a transcript in, speakable events out.

A Policy is shared by every call; `open()` gives one Conversation per call, which owns that call's history.
`respond()` is a blocking generator: the call session advances it from a thread so an LLM stream never
blocks the ESL loop, and speaks each `Say` as soon as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class CallInfo:
    call_id: str
    caller: str = ""
    destination: str = ""
    industry: str = ""
    # Channel variables from the connect reply (variable_* without the prefix), e.g. callagent_industry.
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Say:
    """One speakable chunk (a sentence or a capped piece of one)."""

    text: str


@dataclass(frozen=True)
class Filler:
    """A short phrase to cover a slow tool; spoken only while nothing else is queued."""

    text: str


@dataclass(frozen=True)
class Escalate:
    """Hand the caller to a human. `reason` is a short code (caller_requested, sensitive_topic, …)."""

    reason: str
    summary: str = ""
    priority: int = 5


@dataclass(frozen=True)
class EndCall:
    """Say goodbye (already yielded as Say) and hang up."""

    reason: str = "completed"


@dataclass(frozen=True)
class ToolUsed:
    """Informational: a tool ran (name, ok, ms); stored with the turn for analytics."""

    name: str
    ok: bool
    ms: float


DialogEvent = Say | Filler | Escalate | EndCall | ToolUsed


class Conversation(Protocol):
    def greeting(self) -> str | None:
        """A pack-specific greeting (must disclose the AI), or None for the configured one."""
        ...

    def respond(self, text: str, source: str) -> Iterator[DialogEvent]:
        """Answers one caller turn. `source` is 'asr', 'text-injected' or 'dtmf'.

        The call advances the generator inside `agent.dialog.state.turn_scope(turn_id)`: every history write
        belongs to that turn."""
        ...

    def agent_heard(self, said: str, heard: str) -> None:
        """Barge-in cut the agent's last message: keep only `heard` in the history."""
        ...

    def settle_turn(self, turn_id: str, heard: str) -> None:
        """The call turn `turn_id` is over: its spoken text becomes exactly `heard` (what played), tool calls
        and results stay paired, and nothing the turn's dialog steps still write afterwards is kept."""
        ...

    def discard_turn(self, turn_id: str) -> None:
        """A reply prepared ahead that the caller never heard: everything the turn wrote goes."""
        ...

    def check_time(self) -> Escalate | None:
        """The call-length rule, asked by the call's timer between turns (None: keep going)."""
        ...

    def summary(self) -> str:
        """A short summary of the call so far, for the human who takes over."""
        ...

    def close(self) -> None: ...


class Policy(Protocol):
    name: str

    def open(self, call: CallInfo) -> Conversation: ...
