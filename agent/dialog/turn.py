"""What every caller turn goes through before any policy answers it (the code-level guardrails), and how
a reply becomes Say events. Shared by the scripted and the LLM conversations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from agent.dialog import guardrails, intents
from agent.dialog.escalation import EscalationManager
from agent.dialog.policy import DialogEvent, Say
from agent.dialog.state import DialogState

log = logging.getLogger(__name__)

INJECTION_REPLY = "죄송하지만 그런 요청은 도와드릴 수 없어요. 주문, 배송, 반품 같은 문의를 말씀해 주시면 도와드릴게요."
_RETURN_ASK = re.compile(r"반품|교환|return|exchange", re.I)


def split_for_speech(text: str, max_chars: int) -> list[str]:
    """Sentence pieces no longer than `max_chars`, using the TTS room's Korean chunker."""
    from agent.engines.tts.chunker import split_sentences  # written alongside; imported when first needed

    return [p for p in split_sentences(text, max_chars) if p.strip()]


def speak(state: DialogState, text: str, max_chars: int, msg: dict[str, Any] | None = None) -> Iterator[Say]:
    """Yields `text` as Says (made safe first) and records each in the history as it is yielded."""
    safe = guardrails.safe_reply(text)
    if msg is None:
        msg = state.begin_agent()
    for piece in split_for_speech(safe, max_chars):
        state.add_agent(piece, msg)
        yield Say(piece)


def pre_turn(text: str, state: DialogState, escalation: EscalationManager,
             max_chars: int) -> tuple[str, list[DialogEvent] | None]:
    """Records the caller turn and applies the guardrails. Returns (intent, events): events is None when
    the policy should answer, else the complete answer for this turn (a refusal or an Escalate)."""
    state.writes_blocked = guardrails.is_injection(text)
    intent = intents.classify(text)
    state.intents.append(intent)
    had_secret = guardrails.contains_secret(text)
    state.add_caller(text)  # redacted before it is stored
    if _RETURN_ASK.search(text) and intent == intents.RETURN_REQUEST and not state.writes_blocked:
        state.return_requested = True
    escalate = escalation.check_turn(text, state)
    if escalate is not None:
        log.info("escalating: %s", escalate.reason)
        return intent, [escalate]
    if had_secret:
        # Never pass a card number or password on, not even redacted: answer in code.
        state.note("보안 정보 제지")
        return intent, list(speak(state, guardrails.SECRET_WARNING, max_chars))
    if state.writes_blocked:
        log.info("prompt injection refused")
        events: list[DialogEvent] = list(speak(state, INJECTION_REPLY, max_chars))
        more = escalation.note_outcome("injection", False, state)
        if more is not None:
            events.append(more)
        return intent, events
    return intent, None
