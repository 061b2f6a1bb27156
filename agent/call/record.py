"""The per-call view of the call store: numbers turns and events, stamps times, hides SQL shapes."""

from __future__ import annotations

from typing import Any

from agent.call.channel import ChannelInfo
from agent.store.calls import CallStore, now_utc


class CallRecord:
    def __init__(self, store: CallStore, channel: ChannelInfo):
        self.store = store
        self.call_id = channel.uuid
        self._turn_seq = 0
        self._event_seq = 0
        self.ended = False
        self._channel = channel
        self._started_at = now_utc()
        self._submit_start(answered_at=None)

    def _submit_start(self, answered_at: str | None) -> None:
        channel = self._channel
        self.store.submit(
            "call_start", call_id=channel.uuid, caller=channel.caller, destination=channel.destination,
            industry=channel.industry, started_at=self._started_at, answered_at=answered_at,
            variables={k: v for k, v in channel.variables.items() if k.startswith(("callagent_", "sip_from"))},
        )

    def answered(self) -> None:
        self._submit_start(answered_at=now_utc())

    def next_turn_seq(self) -> int:
        self._turn_seq += 1
        return self._turn_seq

    def turn(self, seq: int, speaker: str, text: str, *, started_at: str, **fields: Any) -> None:
        self.store.submit("turn", call_id=self.call_id, seq=seq, speaker=speaker, text=text,
                          started_at=started_at, **fields)

    def event(self, kind: str, **detail: Any) -> None:
        self._event_seq += 1
        self.store.submit("event", call_id=self.call_id, seq=self._event_seq, at=now_utc(), kind=kind,
                          detail=detail)

    def end(self, reason: str, **fields: Any) -> None:
        if self.ended:
            return
        self.ended = True
        self.store.submit("call_end", call_id=self.call_id, ended_at=now_utc(), end_reason=reason, **fields)
