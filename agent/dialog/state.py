"""Per-call dialog state shared by the scripted and LLM conversations of one call: the history (only what
the caller heard, secrets redacted), who is verified, pending slots, and what was tried.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from agent.dialog.packs import Pack
from agent.dialog.policy import CallInfo
from agent.dialog.slots import birth_date, digit_runs
from agent.privacy.vault import Vault

MAX_HISTORY = 40  # messages kept for the LLM; older turns are dropped from the prompt, not the summary

# Which call turn the running thread works for. A turn's dialog generator is advanced from pool threads, and a
# cancelled turn's step may still be running when the next turn starts: its late writes must land nowhere.
_scope = threading.local()


@contextmanager
def turn_scope(turn_id: str | None) -> Iterator[None]:
    previous = getattr(_scope, "turn_id", None)
    _scope.turn_id = turn_id
    try:
        yield
    finally:
        _scope.turn_id = previous


def current_turn() -> str | None:
    return getattr(_scope, "turn_id", None)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


class TurnLog(list):
    """The history list, remembering which call turn wrote each message; writes of a closed turn are dropped."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.owner: dict[int, str] = {}
        self.closed: set[str] = set()

    def writable(self) -> bool:
        turn = current_turn()
        return turn is None or turn not in self.closed

    def append(self, msg: dict[str, Any]) -> None:  # type: ignore[override]
        if not self.writable():
            return
        turn = current_turn()
        if turn is None:
            self.owner.pop(id(msg), None)
        else:
            self.owner[id(msg)] = turn
        super().append(msg)

    def of_turn(self, turn_id: str) -> list[dict[str, Any]]:
        return [m for m in self if self.owner.get(id(m)) == turn_id]

    def remove_messages(self, doomed: list[dict[str, Any]]) -> None:
        ids = {id(m) for m in doomed}
        self[:] = [m for m in self if id(m) not in ids]
        for key in ids:
            self.owner.pop(key, None)


@dataclass
class DialogState:
    call: CallInfo
    pack: Pack
    clock: Callable[[], float]
    started_at: float = 0.0
    # OpenAI-format messages without the system prompt: user / assistant (+tool_calls) / tool.
    history: TurnLog = field(default_factory=TurnLog)
    verified_customer_id: str | None = None
    verified_by: str | None = None
    # Digits the caller said, kept in memory only: a tool argument that claims to come from the caller
    # (identity check values) must be among them, so an LLM cannot invent a verification.
    caller_digits: list[str] = field(default_factory=list)
    caller_birth_dates: set[date] = field(default_factory=set)
    # Personal data the caller said (accounts, phones, addresses …): the history holds placeholders.
    vault: Vault = field(default_factory=Vault)
    slots: dict[str, str] = field(default_factory=dict)
    pending: str | None = None  # the slot the agent just asked for ("order_id", "identity", …)
    pending_intent: str | None = None
    intents: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)  # short Korean notes for the summary: "주문 조회 성공"
    last_filler: str | None = None
    # Set for a turn that tried a prompt injection: every writing tool refuses during that turn.
    writes_blocked: bool = False
    return_requested: bool = False
    turns: int = 0

    def __post_init__(self) -> None:
        if not self.started_at:
            self.started_at = self.clock()

    # --- caller side -------------------------------------------------------------------------------
    def add_caller(self, text: str) -> str:
        """Records a caller turn; returns the redacted text that is stored (and may be sent to an LLM)."""
        self.turns += 1
        self.caller_digits.extend(digit_runs(text))
        born = birth_date(text)
        if born is not None:
            self.caller_birth_dates.add(born)
        safe = self.vault.protect(text)
        self.history.append({"role": "user", "content": safe})
        self._trim()
        return safe

    def caller_said_digits(self, digits: str) -> bool:
        """True when `digits` (≥4) occur in something the caller said this call."""
        d = "".join(ch for ch in digits if ch.isdigit())
        return len(d) >= 4 and any(d in run for run in self.caller_digits)

    def caller_texts(self) -> list[str]:
        """What the caller said, with the vault's values put back (in memory only; secrets stay masked)."""
        return [self.vault.reveal(m["content"]) for m in self.history if m["role"] == "user"]

    # --- agent side --------------------------------------------------------------------------------
    def begin_agent(self) -> dict[str, Any]:
        """Opens the agent's message for this turn; Says are appended as they are yielded, so a barge-in
        or an abandoned generator leaves exactly what was spoken."""
        msg: dict[str, Any] = {"role": "assistant", "content": ""}
        self.history.append(msg)
        return msg

    def add_agent(self, text: str, msg: dict[str, Any] | None = None) -> None:
        if not self.history.writable():
            return
        if msg is None:
            msg = self.begin_agent()
        msg["content"] = (msg["content"] + " " + text).strip() if msg["content"] else text

    def agent_heard(self, said: str, heard: str) -> None:
        """Keeps only `heard` of the agent message that contained `said`; later text was never played."""
        for i in range(len(self.history) - 1, -1, -1):
            msg = self.history[i]
            content = msg.get("content") or ""
            if msg["role"] != "assistant" or not content:
                continue
            at = content.find(said) if said else -1
            if at < 0:
                continue
            msg["content"] = (content[:at] + heard).strip()
            if not msg["content"] and not msg.get("tool_calls"):
                del self.history[i]
            return

    def discard_turn(self, turn_id: str) -> None:
        """A turn the caller never heard (a reply generated ahead and thrown away): it leaves no trace."""
        self.history.closed.add(turn_id)
        self.history.remove_messages(self.history.of_turn(turn_id))

    def settle_turn(self, turn_id: str, heard: str) -> None:
        """Closes a turn: its spoken text becomes exactly `heard`, tool calls and results stay paired."""
        self.history.closed.add(turn_id)
        left = _squash(heard)
        doomed = []
        for msg in self.history.of_turn(turn_id):
            if msg["role"] != "assistant":
                continue
            content = msg.get("content") or ""
            squashed = _squash(content)
            if squashed and left.startswith(squashed):
                left = left[len(squashed):]
            else:
                msg["content"] = _prefix_of(content, left)
                left = ""
            if not msg["content"] and not msg.get("tool_calls"):
                doomed.append(msg)
        self.history.remove_messages(doomed)

    def agent_texts(self) -> list[str]:
        return [m["content"] for m in self.history if m["role"] == "assistant" and m.get("content")]

    # --- bookkeeping -------------------------------------------------------------------------------
    def note(self, what: str) -> None:
        if not self.tried or self.tried[-1] != what:
            self.tried.append(what)

    def verify(self, customer_id: str, how: str) -> None:
        self.verified_customer_id = customer_id
        self.verified_by = how
        self.note("본인 확인 완료")

    def elapsed_s(self) -> float:
        return self.clock() - self.started_at

    def _trim(self) -> None:
        if len(self.history) > MAX_HISTORY:
            cut = len(self.history) - MAX_HISTORY
            # Never start the window on a tool result whose assistant tool_call was dropped.
            while cut < len(self.history) and self.history[cut]["role"] == "tool":
                cut += 1
            del self.history[:cut]


def _prefix_of(content: str, squashed_prefix: str) -> str:
    """The start of `content` whose non-space characters are `squashed_prefix` (spacing kept as written)."""
    if not squashed_prefix:
        return ""
    need = len(squashed_prefix)
    seen = 0
    for i, ch in enumerate(content):
        if not ch.isspace():
            seen += 1
            if seen == need:
                return content[: i + 1].strip()
    return content.strip()
