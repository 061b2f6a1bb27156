"""What the call session calls on a conversation besides `respond`, the same for the scripted and the LLM
conversations: each answers from its `DialogState` and `EscalationManager`."""

from __future__ import annotations

from agent.dialog.escalation import EscalationManager
from agent.dialog.packs import Pack
from agent.dialog.policy import Escalate
from agent.dialog.state import DialogState


class ConversationBase:
    state: DialogState
    pack: Pack
    escalation: EscalationManager

    def greeting(self) -> str | None:
        return self.pack.greeting

    def agent_heard(self, said: str, heard: str) -> None:
        self.state.agent_heard(said, heard)

    def settle_turn(self, turn_id: str, heard: str) -> None:
        self.state.settle_turn(turn_id, heard)

    def discard_turn(self, turn_id: str) -> None:
        self.state.discard_turn(turn_id)

    def check_time(self) -> Escalate | None:
        """The call-length rule, for the call's timer (it fires once per call)."""
        return self.escalation.check_time(self.state)

    def close(self) -> None:
        self.state.pending = None
