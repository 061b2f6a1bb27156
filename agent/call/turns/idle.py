"""A silent caller: reprompt with a different prompt each time, then end politely or hand off (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IdleDecision:
    prompt: str | None = None  # say this and keep waiting
    give_up: bool = False  # the prompts are used up: end the call or hand it to a human


@dataclass
class IdlePolicy:
    timeout_s: float
    prompts: tuple[str, ...]
    last_activity: float = 0.0
    used: int = 0

    def activity(self, now: float) -> None:
        """The caller spoke or typed, or the agent finished speaking: the silence clock restarts."""
        self.last_activity = now
        self.used = 0

    def busy(self, now: float) -> None:
        """The agent is speaking or thinking: silence is not the caller's."""
        self.last_activity = now

    def tick(self, now: float) -> IdleDecision | None:
        if now - self.last_activity < self.timeout_s:
            return None
        self.last_activity = now
        if self.used < len(self.prompts):
            self.used += 1
            return IdleDecision(prompt=self.prompts[self.used - 1])
        return IdleDecision(give_up=True)
