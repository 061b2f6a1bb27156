"""The per-call view of the call store: numbers turns and events, stamps times, hides SQL shapes.

This is the edge where a call's words reach storage, so personal data is masked here (agent/privacy/pii.py):
turn text, what the caller heard, event details and the summary. Everything behind it (PostgreSQL, the disk
spool, analytics read from them) only ever sees masked text. DTMF keys typed as a number, or during a secure
entry, are stored without their digit (agent/privacy/dtmf.py).
"""

from __future__ import annotations

from typing import Any

from agent.call.channel import ChannelInfo
from agent.privacy.dtmf import SecureEntry
from agent.privacy.pii import mask_keypad, mask_text, mask_value
from agent.store.calls import CallStore, now_utc

OWNER_VARIABLE = "callagent_controller"
_TEXT_FIELDS = ("heard_text", "summary", "escalation_reason", "transfer_target")


def _masked_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for name in _TEXT_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = mask_text(out[name])
    if "detail" in out:
        out["detail"] = mask_value(out["detail"])
    return out


class CallRecord:
    def __init__(self, store: CallStore, channel: ChannelInfo, *, owner: str = ""):
        self.store = store
        self._owner = owner  # the controller serving the call: after a crash it closes only its own calls
        self.call_id = channel.uuid
        self._turn_seq = 0
        self._event_seq = 0
        self.ended = False
        self._channel = channel
        self._started_at = now_utc()
        self._keys = SecureEntry()
        self._submit_start(answered_at=None)

    def _submit_start(self, answered_at: str | None) -> None:
        channel = self._channel
        # The caller ID stays in clear: it is how a deletion request (`callagent forget`) finds the calls.
        self.store.submit(
            "call_start", call_id=channel.uuid, caller=channel.caller, destination=channel.destination,
            industry=channel.industry, started_at=self._started_at, answered_at=answered_at,
            variables=mask_value({k: v for k, v in channel.variables.items()
                                  if k.startswith(("callagent_", "sip_from"))}
                                 | ({OWNER_VARIABLE: self._owner} if self._owner else {})),
        )

    def answered(self) -> None:
        self._submit_start(answered_at=now_utc())

    def next_turn_seq(self) -> int:
        self._turn_seq += 1
        return self._turn_seq

    def turn(self, seq: int, speaker: str, text: str, *, started_at: str, **fields: Any) -> None:
        if speaker == "agent":
            self._keys.agent_said(text)
        else:
            self._release_keys()
            self._keys.caller_spoke()
        # A number typed on the keypad is how a PIN is entered: stored masked, whatever it was.
        stored = mask_keypad(text) if fields.get("source") == "dtmf" else mask_text(text)
        self.store.submit("turn", call_id=self.call_id, seq=seq, speaker=speaker, text=stored,
                          started_at=started_at, **_masked_fields(fields))

    def event(self, kind: str, **detail: Any) -> None:
        if kind == "dtmf":
            self._key(detail)
            return
        self._release_keys()
        self._event_seq += 1
        self.store.submit("event", call_id=self.call_id, seq=self._event_seq, at=now_utc(), kind=kind,
                          detail=mask_value(detail))

    def end(self, reason: str, **fields: Any) -> None:
        if self.ended:
            return
        self._release_keys()
        self.ended = True
        self.store.submit("call_end", call_id=self.call_id, ended_at=now_utc(), end_reason=reason,
                          **_masked_fields(fields))

    # --- DTMF ------------------------------------------------------------------------------------------
    def _key(self, detail: dict[str, Any]) -> None:
        self._event_seq += 1
        digit = str(detail.get("digit") or "")
        self._write_keys(self._keys.digit(self._event_seq, now_utc(), digit), detail)

    def _release_keys(self) -> None:
        self._write_keys(self._keys.release(), {})

    def _write_keys(self, keys: list[tuple[int, str, str | None]], extra: dict[str, Any]) -> None:
        rest = {k: v for k, v in extra.items() if k != "digit"}
        for seq, at, digit in keys:
            detail: dict[str, Any] = {"digit": digit, **mask_value(rest)}
            if digit is None:
                detail["masked"] = True
            self.store.submit("event", call_id=self.call_id, seq=seq, at=at, kind="dtmf", detail=detail)
