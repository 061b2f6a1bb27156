"""Hand-off to a human: channel variables, the notice, then uuid_transfer and exit (freeswitch.md §4, §5).

Variables first (they survive the transfer and mod_callcenter exports them to the agent leg), then the notice
(or the apology when a fault caused the hand-off), then `uuid_break all` to flush anything still queued, the
transfer, and `exit` right after its +OK (§1.7: the socket would otherwise stay attached).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from agent.call.threads import call_in_thread
from agent.esl import commands as cmd
from agent.esl.errors import CallGone, EslError

if TYPE_CHECKING:
    from agent.call.session import CallSession

log = logging.getLogger(__name__)

SUMMARY_TIMEOUT_S = 3.0
NOTICE_SLACK_S = 3.0


def _summary(session: CallSession, given: str) -> str:
    if given or session.conv is None:
        return given
    try:
        text, _ = call_in_thread(session.conv.summary, timeout=SUMMARY_TIMEOUT_S)
        return text or ""
    except Exception:  # noqa: BLE001 - a missing summary must not block the transfer
        log.exception("call %s: summary failed", session.uuid)
        return ""


def transfer_to_human(session: CallSession, reason: str, summary: str, priority: int, failure: bool) -> None:
    s, cfg = session, session.cfg
    target = f"{cfg.human_extension} {cfg.human_dialplan} {cfg.human_context}"
    s.record.event("escalation", reason=reason, priority=priority)
    try:
        s.conn.api(cmd.uuid_break(s.uuid), check=False)
        for handle in s.playout.active():
            handle.cut(time.monotonic())
            s.check_finished(handle)
        summary = _summary(s, summary)
        for name, value in (("escalation_reason", reason), ("ai_summary", summary or "-"),
                            ("ai_call_id", s.uuid), ("ai_priority", str(priority))):
            s.conn.api(cmd.uuid_setvar(s.uuid, name, value))
        notice = s.say_prompt(cfg.apology if failure else cfg.transfer_notice, interruptible=False)
        s.wait_finished(notice, sum(c.duration_s for c in notice.chunks) + NOTICE_SLACK_S)
        s.conn.api(cmd.uuid_transfer(s.uuid, cfg.human_extension, cfg.human_dialplan, cfg.human_context))
    except CallGone:
        log.info("call %s: caller left during the hand-off", s.uuid)
        return
    except EslError as exc:
        # The channel is still ours: leaving the socket lets the dialplan fall through to the human queue.
        log.warning("call %s: transfer failed (%s); leaving the call to the dialplan fallback", s.uuid, exc)
        target = "dialplan-fallback"
    s.record.end("transferred", transfer_target=target, escalation_reason=reason, summary=summary or None)
    s.state = "transferred"
    try:
        s.conn.command("exit")
    except EslError:
        s.conn.close()
