"""The LLM policy: streams the model's answer sentence by sentence, runs its tool calls (bounded rounds),
and falls back to the scripted policy for a turn when the model fails or misses the turn's deadline.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from agent.dialog import guardrails, intents
from agent.dialog.conversation import ConversationBase
from agent.dialog.crm import CrmAdapter
from agent.dialog.escalation import EscalationManager, extractive_summary
from agent.dialog.knowledge import KnowledgeBase
from agent.dialog.llm import LlmClient, LlmError
from agent.dialog.llm_guard import LlmGuard
from agent.dialog.packs import Pack
from agent.dialog.policy import CallInfo, DialogEvent, Say
from agent.dialog.scripted import ScriptedConversation, ScriptedPolicy
from agent.dialog.settings import DialogSettings
from agent.dialog.state import DialogState
from agent.dialog.tools import PROGRESS_ERRORS
from agent.dialog.turn import pre_turn
from agent.engines.breaker import CLOSED

log = logging.getLogger(__name__)

SUMMARY_TIMEOUT_S = 3.0
SUMMARY_PROMPT = ("아래 통화 내용을 인간 상담원이 이어받을 수 있게 한두 문장의 한국어로 요약하세요. 고객의 핵심 문의, "
                  "주문번호, 고객 감정, 이미 시도한 조치를 포함하고 카드번호·비밀번호·생년월일은 쓰지 마세요.")
_MARKDOWN = re.compile(r"\*\*|__|`+|^#+\s*|^\s*[-*•]\s+|^\s*\d+\.\s+", re.M)
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def clean_for_speech(text: str) -> str:
    """Drops Markdown and emoji a model may emit despite the prompt: the TTS would read them out."""
    return _EMOJI.sub("", _MARKDOWN.sub("", text))


class LlmPolicy:
    name = "llm"

    def __init__(self, *, settings: DialogSettings, pack: Pack, llm: LlmClient, crm: CrmAdapter | None,
                 kb: KnowledgeBase | None, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] = date.today, guard: LlmGuard | None = None):
        self.settings = settings
        self.pack = pack
        self.llm = llm
        # The endpoint's circuit breaker (shared by every call); None: every turn tries the model.
        self.guard = guard
        self.clock = clock
        self.scripted = ScriptedPolicy(settings=settings, pack=pack, crm=crm, kb=kb, clock=clock, today=today)

    def open(self, call: CallInfo) -> LlmConversation:
        return LlmConversation(self, DialogState(call=call, pack=self.scripted.pack_for(call), clock=self.clock))


class LlmConversation(ConversationBase):
    def __init__(self, policy: LlmPolicy, state: DialogState):
        self.policy = policy
        self.state = state
        self.settings = policy.settings
        self.pack = state.pack
        self.escalation = EscalationManager(self.settings.escalation, self.pack.sensitive_keywords)
        self._usage = [0, 0]  # provider-reported prompt / completion tokens not yet taken by the call
        # The scripted conversation shares this state: a fallback turn sees the same slots and history.
        self.fallback = ScriptedConversation(policy.scripted, state, self.escalation)
        self.tools = self.fallback.tools
        self._summary: tuple[int, str] | None = None

    def respond(self, text: str, source: str) -> Iterator[DialogEvent]:
        if not text.strip():
            return
        intent, handled = pre_turn(text, self.state, self.escalation, self.settings.max_say_chars)
        if source == "dtmf":
            self._hold_keypad(text)
        if handled is not None:
            yield from handled
            return
        guard = self.policy.guard
        if guard is not None and not guard.allow():
            # The model server is down for every call: no wait, the scripted policy answers from this state.
            self.state.note("AI 서버 장애로 기본 응답")
            yield from self.fallback.answer(text, intent)
            return
        spoken: list[Say] = []
        settled = False
        try:
            yield from self._llm_turn(intent, spoken)
            settled = True
            if guard is not None:
                guard.success()
        except LlmError as exc:
            settled = True
            if guard is not None:
                guard.failure(exc)
            log.warning("llm turn failed (%s); scripted policy answers this turn", type(exc).__name__)
            if not spoken:
                self.state.note("AI 응답 지연으로 기본 응답")
                yield from self.fallback.answer(text, intent)
        finally:
            if not settled and guard is not None:
                # Cut by a barge-in: a model that was already speaking answered; else let another turn try.
                if spoken:
                    guard.success()
                else:
                    guard.abandon()

    def _hold_keypad(self, digits: str) -> None:
        """A typed number may be a PIN: the model sees `[KEYPAD_1]`, a tool still gets the digits."""
        digits = digits.strip()
        if len(digits) < 3 or not digits.isdigit():
            return
        for msg in reversed(self.state.history):
            if msg["role"] == "user":
                if msg["content"] == digits:
                    msg["content"] = self.state.vault.hold_keypad(digits)
                return

    def _add_usage(self, prompt: int, completion: int) -> None:
        self._usage[0] += prompt
        self._usage[1] += completion

    def take_usage(self) -> dict[str, int] | None:
        """Tokens used since the last take (the call stores them with the agent turn, for its cost)."""
        prompt, completion = self._usage
        self._usage = [0, 0]
        return {"prompt_tokens": prompt, "completion_tokens": completion} if prompt or completion else None

    def summary(self) -> str:
        """LLM summary (bounded by SUMMARY_TIMEOUT_S), else the extractive one; cached per history length."""
        key = len(self.state.history)
        if self._summary and self._summary[0] == key:
            return self._summary[1]
        transcript = "\n".join(f"{'고객' if m['role'] == 'user' else '상담원'}: {m['content']}"
                               for m in self.state.history if m["role"] in ("user", "assistant") and m.get("content"))
        text = ""
        guard = self.policy.guard
        if transcript and (guard is None or guard.state == CLOSED):  # a down server gets no 3 s wait
            try:
                text = self.policy.llm.complete(
                    [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": transcript}],
                    timeout_s=min(SUMMARY_TIMEOUT_S, self.settings.llm.timeout_s))
            except LlmError:
                log.warning("llm summary failed; using the extractive summary")
        # The history holds vault placeholders; the summary goes to a channel variable and the database, so
        # it carries the masked forms ("[계좌번호 ****6789]") and never a value.
        vault = self.state.vault
        text = vault.masked(" ".join(text.split()))[:300] or vault.masked(extractive_summary(self.state))
        self._summary = (key, text)
        return text

    # --- one LLM turn -----------------------------------------------------------------------------
    def _llm_turn(self, intent: str, spoken: list[Say]) -> Iterator[DialogEvent]:
        from agent.engines.tts.chunker import SentenceChunker  # the TTS room's chunker, loaded when first used

        cfg = self.settings.llm
        deadline = time.monotonic() + cfg.timeout_s
        outcomes: list[bool] = []
        for round_no in range(cfg.max_tool_rounds + 1):
            # The last round offers no tools, so the model must finally speak.
            offer_tools = round_no < cfg.max_tool_rounds
            msg = self.state.begin_agent()
            chunker = SentenceChunker(max_chars=self.settings.max_say_chars)
            calls = []
            for piece in self.policy.llm.stream(self._messages(), self.tools.schemas() if offer_tools else None,
                                                deadline=deadline, on_usage=self._add_usage):
                if isinstance(piece, list):
                    calls = piece
                    break
                for sentence in chunker.feed(piece):
                    yield from self._say(sentence, msg, spoken)
            for sentence in chunker.flush():
                yield from self._say(sentence, msg, spoken)
            if not calls:
                break
            msg["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
            for call in calls:
                result = yield from self.tools.call(call.name, call.args(), self.fallback.ctx)
                # The tool ran on real values (ToolBox resolves the placeholders); the model sees placeholders.
                content = self.state.vault.protect(json.dumps(result.message(), ensure_ascii=False))
                self.state.history.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                                           "content": content})
                if result.escalate is not None:
                    yield result.escalate
                    return
                if result.data.get("error") not in PROGRESS_ERRORS:
                    outcomes.append(result.ok)
        resolved = any(outcomes) or not outcomes
        if not spoken:
            resolved = False
        topic = intent if intent != intents.FAQ or not self.state.pending_intent else self.state.pending_intent
        escalate = self.escalation.note_outcome(topic, resolved, self.state)
        if escalate is not None:
            yield escalate

    def _say(self, sentence: str, msg: dict[str, Any], spoken: list[Say]) -> Iterator[Say]:
        # A placeholder the model wrote is said as "계좌번호 끝자리 6789", never read out whole.
        text = guardrails.safe_reply(clean_for_speech(self.state.vault.speakable(sentence))).strip()
        if not text:
            return
        self.state.add_agent(text, msg)
        say = Say(text)
        spoken.append(say)
        yield say

    def _system_prompt(self) -> str:
        st = self.state
        facts = [f"오늘 날짜: {self.policy.scripted.today().isoformat()}"]
        if st.verified_customer_id:
            facts.append("본인 확인: 완료")
        else:
            facts.append("본인 확인: 아직 안 됨 (주문·계좌 정보 조회 전에 필요)")
        if st.slots.get("order_id"):
            facts.append(f"대화 중 언급된 주문번호: {st.slots['order_id']}")
        return (f"{self.pack.system_prompt}\n\n현재 통화 정보:\n- " + "\n- ".join(facts)
                + "\n도구 결과에 suggested_reply가 있으면 그 내용을 바탕으로 자연스럽게 말하세요.")

    def _messages(self) -> list[dict[str, Any]]:
        """System prompt + history, with any tool call left without a result (an abandoned turn) dropped."""
        answered = {m.get("tool_call_id") for m in self.state.history if m["role"] == "tool"}
        out: list[dict[str, Any]] = [{"role": "system", "content": self._system_prompt()}]
        issued: set[str] = set()
        for m in self.state.history:
            if m["role"] == "assistant":
                calls = [c for c in m.get("tool_calls") or [] if c["id"] in answered]
                if not m.get("content") and not calls:
                    continue
                item: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}
                if calls:
                    item["tool_calls"] = calls
                    issued.update(c["id"] for c in calls)
                out.append(item)
            elif m["role"] == "tool":
                if m.get("tool_call_id") in issued:
                    out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
            else:
                out.append({"role": m["role"], "content": m["content"]})
        return out
