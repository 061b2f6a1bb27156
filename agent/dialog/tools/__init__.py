"""The plan's six call-centre tools (plus identity check and, for banking, balances) as OpenAI tool schemas,
and `ToolBox`, which runs one with a deadline and a filler phrase when it is slow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from typing import Any

from agent.dialog.packs import Pack
from agent.dialog.policy import Filler, ToolUsed
from agent.dialog.tools import (
    check_delivery,
    escalate_to_human,
    lookup_account,
    lookup_order,
    process_return,
    search_faq,
    update_customer_info,
    verify_identity,
)
from agent.dialog.tools.base import CRM_DOWN, ToolContext, ToolResult, ToolSpec, refuse, spec_from_module

log = logging.getLogger(__name__)

ALL: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in map(spec_from_module, (lookup_order, check_delivery, process_return, search_faq,
                                       update_customer_info, escalate_to_human, verify_identity, lookup_account))
}
FILLERS = (
    "잠시만요, 확인해 보겠습니다.",
    "네, 조회하고 있어요. 잠시만 기다려 주세요.",
    "확인 중입니다. 조금만 기다려 주시겠어요?",
    "잠시만요, 바로 찾아볼게요.",
)

# Short Korean notes for the hand-over summary ("시도: 주문 조회 성공, 반품 접수 실패").
TOOL_NOTES = {"lookup_order": "주문 조회", "check_delivery": "배송 조회", "process_return": "반품 접수",
              "search_faq": "FAQ 검색", "update_customer_info": "정보 변경", "lookup_account": "잔액 조회",
              "verify_identity": "본인 확인"}
# Errors that only mean "tell me more" (a slot or identity is missing): progress, not failure.
PROGRESS_ERRORS = ("verification_required", "missing_number", "missing_order_id", "missing", "partial")


def next_filler(last: str | None) -> str:
    """The filler after `last`, so the caller never hears the same one twice in a row."""
    if last not in FILLERS:
        return FILLERS[0]
    return FILLERS[(FILLERS.index(last) + 1) % len(FILLERS)]


class ToolBox:
    """The tools one pack allows, run with a filler after `filler_after_s` and a hard `timeout_s`."""

    def __init__(self, pack: Pack, *, filler_after_s: float = 1.0, timeout_s: float = 8.0):
        self.names = tuple(n for n in pack.tools if n in ALL)
        self.filler_after_s = filler_after_s
        self.timeout_s = timeout_s

    def schemas(self) -> list[dict[str, Any]]:
        return [ALL[n].schema() for n in self.names]

    def call(self, name: str, args: dict[str, Any], ctx: ToolContext) -> Generator[Filler | ToolUsed, None,
                                                                                     ToolResult]:
        """Runs tool `name`; yields a Filler if it is slow and a ToolUsed at the end; returns its result."""
        started = time.monotonic()
        if name not in self.names:
            # Not offered to this pack (or invented by the model): refused, never run.
            result = refuse("unknown_tool", "죄송하지만 그 업무는 제가 도와드릴 수 없어요.")
            yield ToolUsed(name=name, ok=False, ms=0.0)
            return result
        spec = ALL[name]
        # The model passes vault placeholders ("[ACCOUNT_1]"); the tool gets the value the caller said.
        vault = getattr(ctx.state, "vault", None)
        if vault is not None:
            args = vault.resolve(args)  # type: ignore[assignment]
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["result"] = spec.run(ctx, args)
            except Exception as exc:  # noqa: BLE001 - any failure becomes an apology, never a crash
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name=f"tool-{name}", daemon=True).start()
        if not done.wait(self.filler_after_s):
            filler = next_filler(ctx.state.last_filler)
            ctx.state.last_filler = filler
            yield Filler(filler)
            done.wait(max(0.0, self.timeout_s - self.filler_after_s))
        ms = (time.monotonic() - started) * 1000
        if not done.is_set():
            log.warning("tool %s timed out after %.0f ms", name, ms)
            result = refuse("timeout", CRM_DOWN)
        elif "error" in box:
            # The exception type only: messages from a CRM can echo customer data.
            log.warning("tool %s failed: %s", name, type(box["error"]).__name__)
            result = refuse("tool_failed", CRM_DOWN)
        else:
            result = box["result"]
        if name in TOOL_NOTES and result.data.get("error") not in PROGRESS_ERRORS:
            ctx.state.note(TOOL_NOTES[name] + (" 성공" if result.ok else " 실패"))
        yield ToolUsed(name=name, ok=result.ok, ms=round(ms, 1))
        return result
