"""The call's own deadlines, checked on each tick of the session's ticker: a silent caller and the call length.

A silent caller hears the reprompts of the idle policy (`turns/idle.py`), then the call ends the way
`no_input_action` says: a hand-off (reason `no_input`), or the goodbye played to its end and a hang-up. The
call-length rule (the dialog's `check_time`) runs on this timer too, not only when the caller speaks. Time is
passed in; the session hands over what these need and decides when the agent is busy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.call.actions.hangup import hang_up
from agent.call.actions.say import Voice
from agent.call.record import CallRecord
from agent.call.turns.idle import IdlePolicy
from agent.dialog.policy import Escalate
from agent.esl.connection import EslConnection

TIME_CHECK_S = 1.0  # the call-length rule is asked once a second, not on every tick
GOODBYE_SLACK_S = 3.0  # past the goodbye's planned end, then the agent hangs up anyway


@dataclass
class CallDeadlines:
    """What the deadlines are handed; the session builds it once the call is answered."""

    conn: EslConnection
    uuid: str
    voice: Voice
    record: CallRecord
    idle: IdlePolicy
    no_input_action: str  # "hangup": goodbye, then hang up; anything else: hand the caller to a human
    goodbye: str
    escalate: Callable[..., None]  # (reason, summary="", priority=5, *, failure=False)
    spawn: Callable[..., object]  # runs the goodbye in a greenlet of the call, so events keep flowing
    ending: Callable[[], None]  # the agent is ending the call: no hand-off or turn from here on
    stop_media: Callable[[], None]  # the fork and the recording end before the hang-up
    check_time: Callable[[], Escalate | None] | None = None
    checked_at: float = 0.0  # when the call-length rule was last asked

    def tick(self, now: float, *, busy: bool) -> None:
        """`busy`: the agent speaks or thinks, or the caller speaks or types; that silence is not the caller's."""
        self._idle_tick(now, busy)
        self._time_limit_tick(now)

    def _idle_tick(self, now: float, busy: bool) -> None:
        if busy:
            self.idle.busy(now)
            return
        decision = self.idle.tick(now)
        if decision is None:
            return
        self.record.event("no_input", prompts_used=self.idle.used, give_up=decision.give_up)
        if decision.prompt is not None:
            self.voice.say_prompt(decision.prompt)
        elif self.no_input_action == "hangup":
            self.spawn(self.say_goodbye)
        else:
            self.escalate("no_input")

    def _time_limit_tick(self, now: float) -> None:
        if self.check_time is None or now - self.checked_at < TIME_CHECK_S:
            return
        self.checked_at = now
        outcome = self.check_time()
        if outcome is not None:
            self.escalate(outcome.reason, outcome.summary, outcome.priority)

    def say_goodbye(self) -> None:
        """Ends the call politely: the goodbye plays to the end (bounded), then the agent hangs up."""
        self.ending()
        handle = self.voice.say_prompt(self.goodbye, interruptible=False)
        self.voice.wait_finished(handle, self.voice.remaining_s(handle) + GOODBYE_SLACK_S)
        self.stop_media()
        hang_up(self.conn, self.uuid)
