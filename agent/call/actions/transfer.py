"""The transfer verb: hand the caller to a human (freeswitch.md §1.7, §4, §5). It cannot die half-way.

Order: stop the fork (the AI stops listening: its media bug would survive the transfer, §10) and the
recording of the AI part; flush what plays; set the channel variables mod_callcenter exports to the agent
leg; play the notice (or the apology after a fault); `uuid_transfer`; `exit` right after its +OK. Every step is
bounded and guarded against every exception — gevent's Timeout is a BaseException — so the transfer happens
even when the summary, the notice or the store fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import gevent

from agent.call.actions.say import Voice
from agent.call.record import CallRecord
from agent.call.threads import call_in_thread
from agent.esl import commands as cmd
from agent.esl.connection import EslConnection
from agent.esl.errors import CallGone, EslError

log = logging.getLogger(__name__)

SUMMARY_TIMEOUT_S = 3.0
NOTICE_SLACK_S = 3.0
NOTICE_MAX_S = 8.0  # a notice never holds the transfer longer than this, whatever its file says


@dataclass(frozen=True)
class HumanQueue:
    extension: str
    dialplan: str
    context: str
    notice: str
    apology: str

    @property
    def target(self) -> str:
        return f"{self.extension} {self.dialplan} {self.context}"


@dataclass
class HandOff:
    """What the transfer is handed; the session builds it."""

    conn: EslConnection
    uuid: str
    voice: Voice
    record: CallRecord
    queue: HumanQueue
    summarize: Callable[[], str]  # blocking: runs in a thread, bounded
    mask: Callable[[str], str]  # secrets out of what goes to the channel and the store
    before_transfer: Callable[[], None]  # stop listening and recording


def _guarded(what: str, uuid: str, fn: Callable[[], object]) -> bool:
    try:
        fn()
        return True
    except CallGone:
        raise
    except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - no step may stop the hand-off
        log.warning("call %s: hand-off step '%s' failed: %s", uuid, what, exc)
        return False


def _summary(h: HandOff, given: str) -> str:
    if given:
        return h.mask(given)
    try:
        text, _ = call_in_thread(h.summarize, timeout=SUMMARY_TIMEOUT_S)
        return h.mask(text or "")
    except CallGone:
        raise
    except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - a missing summary must not block the transfer
        log.warning("call %s: summary failed (%s); transferring without it", h.uuid, type(exc).__name__)
        return ""


def transfer_to_human(h: HandOff, reason: str, summary: str, priority: int, failure: bool) -> str:
    """Returns how the call ended: "transferred" or "caller_gone"."""
    target = h.queue.target
    try:
        _guarded("record", h.uuid, lambda: h.record.event("escalation", reason=reason, priority=priority))
        _guarded("stop listening", h.uuid, h.before_transfer)
        _guarded("flush", h.uuid, h.voice.break_all)
        summary = _summary(h, summary)
        for name, value in (("escalation_reason", reason), ("ai_summary", summary or "-"),
                            ("ai_call_id", h.uuid), ("ai_priority", str(priority))):
            _guarded(f"setvar {name}", h.uuid, lambda n=name, v=value: h.conn.api(cmd.uuid_setvar(h.uuid, n, v)))
        _play_notice(h, h.queue.apology if failure else h.queue.notice)
        h.conn.api(cmd.uuid_transfer(h.uuid, h.queue.extension, h.queue.dialplan, h.queue.context))
    except CallGone:
        log.info("call %s: caller left during the hand-off", h.uuid)
        return "caller_gone"
    except (EslError, gevent.Timeout) as exc:
        # The channel is still ours: leaving the socket lets the dialplan fall through to the human queue.
        log.warning("call %s: transfer failed (%s); leaving the call to the dialplan fallback", h.uuid, exc)
        target = "dialplan-fallback"
    _guarded("record end", h.uuid, lambda: h.record.end(
        "transferred", transfer_target=target, escalation_reason=reason, summary=summary or None))
    try:
        h.conn.command("exit")
    except (EslError, gevent.Timeout):
        h.conn.close()
    return "transferred"


def _play_notice(h: HandOff, text: str) -> None:
    def play() -> None:
        notice = h.voice.say_prompt(text, interruptible=False)
        wait = min(NOTICE_MAX_S, h.voice.remaining_s(notice) + NOTICE_SLACK_S)
        h.voice.wait_finished(notice, wait)

    _guarded("notice", h.uuid, play)
