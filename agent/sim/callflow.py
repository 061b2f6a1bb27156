"""The channel's trip through the dialplan: the public DID extension, `socket`, and wherever it goes next.

Reads the project's own `dialplan/` XML (agent/sim/dialplan.py) instead of hard-coding the fallback:
`socket h1|h2 async full` tries each host and moves on only when the connection fails (freeswitch.md §1.3,
§5); when `socket` returns (every host refused, or the agent let go of a parked call) the next action
runs. `transfer` / `uuid_transfer` re-routes the same channel, which keeps its variables and its media
bugs (§10). mod_callcenter is modelled as "the caller waits with music" until hangup or an exit key.
"""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from typing import TYPE_CHECKING

from agent.sim.dialplan import Action
from agent.sim.fsutil import separate_string
from agent.sim.listener import CONNECT_TIMEOUT_S, OutboundListener
from agent.sim.log import QueueStay

if TYPE_CHECKING:
    from agent.sim.channel import Channel

MAX_TRANSFERS = 16          # FreeSWITCH's max_forwards-like loop guard for a mis-written dialplan


async def run_dialplan(ch: Channel) -> None:
    """Routes `public` for the DID, then every transfer's context, until hangup or the actions run out."""
    context = "public"
    for _ in range(MAX_TRANSFERS):
        actions = _route(ch, context)
        if actions is None:
            ch.hangup("NO_ROUTE_DESTINATION", by="dialplan")
            return
        ch.transfer_pending = False
        await _execute(ch, actions)
        if not ch.up or not ch.transfer_pending:
            break
        context = ch.context
        for state in ("CS_ROUTING", "CS_EXECUTE"):
            ch.state = state
            ch.fire("CHANNEL_STATE")
    if ch.up and not ch.transfer_pending:
        # The extension ran out of actions: switch_core_session_execute_exten's end hangs up.
        ch.hangup("NORMAL_CLEARING", by="dialplan")


def _route(ch: Channel, context: str) -> list[Action] | None:
    plan = ch.sim.dialplan
    actions, matched = plan.hunt(context, ch.lookup)
    if context == "public" and not matched:
        # The scripted DID has no extension of its own: use the first one that reaches the agent.
        ext = plan.first_with("public", "socket")
        if ext is None:
            return None
        ch.note(f"no public extension matches {ch.destination!r}: routed like {ext.name!r}")
        actions, matched = [a for c in ext.conditions for a in c.actions], [ext.name]
        actions = [Action(a.app, a.data.replace("$1", ch.destination)) for a in actions]
    if not matched:
        ch.note(f"no extension for {ch.destination!r} in context {context!r}")
        return None
    ch.log.route.append((context, ch.destination, matched))
    return actions


async def _execute(ch: Channel, actions: list[Action]) -> None:
    for action in actions:
        if not ch.up or ch.transfer_pending:
            return
        if action.app == "socket":
            await socket_app(ch, action.data)
            continue
        ch.in_dialplan = True
        try:
            await ch.executor.exec_app(action.app, action.data or None, str(uuidlib.uuid4()))
        finally:
            ch.in_dialplan = False


def socket_data(ch: Channel, data: str) -> tuple[list[tuple[str, int]], str]:
    """The XML's `hosts flags`, with the hosts replaced by the simulator's agent addresses."""
    _, _, flags = data.strip().partition(" ")
    words = [w for w in flags.split() if ch.sim.full or w != "full"]
    hosts = list(ch.sim.agent_addrs)
    text = "|".join(f"{h}:{p}" for h, p in hosts) + (" " + " ".join(words) if words else "")
    return hosts, text


async def socket_app(ch: Channel, data: str) -> None:
    """socket_function: connect to each host in turn; a refused connection moves on (`Socket Error!`)."""
    ch.socket_ran = True
    for key, value in ch.script_variables.items():
        ch.variables[key] = value          # the test's variables win over the dialplan's `set`s
    hosts, ch.socket_data = socket_data(ch, data)
    ch.variables.update(current_application="socket", current_application_data=ch.socket_data)
    for host, port in hosts:
        listener = OutboundListener(ch)
        ch.log.dials.append((host, port))
        if not await listener.dial(host, port):
            ch.note(f"socket {host}:{port}: connection failed, trying the next host")
            continue
        ch.listener = listener
        ch.variables["socket_host"] = host
        await _controlled(ch, listener)
        return
    ch.log.ended_by = "agent_unreachable"
    ch.note("socket: every host refused, dialplan continues")
    ch.fell_through = ch.log.fell_through = True
    ch.started.set()


async def _controlled(ch: Channel, listener: OutboundListener) -> None:
    ch.controlled = True
    loop = asyncio.get_running_loop()
    ch.reader = loop.create_task(listener.run(), name=f"esl-{ch.uuid[:8]}")
    connected = loop.create_task(listener.connected.wait())
    await asyncio.wait({connected, ch.reader}, timeout=CONNECT_TIMEOUT_S + 1,
                       return_when=asyncio.FIRST_COMPLETED)
    connected.cancel()
    if not listener.connected.is_set():
        ch.controlled = False
        ch.started.set()
        if ch.up:
            ch.fell_through = ch.log.fell_through = True
        return
    ch.log.connected_at = time.monotonic()
    ch.started.set()
    await ch.executor.park()
    ch.fire("CHANNEL_UNPARK")
    ch.fire("CHANNEL_EXECUTE_COMPLETE", [
        ("Application", "socket"), ("Application-Data", ch.socket_data),
        ("Application-Response", "_none_"), ("Application-UUID", str(uuidlib.uuid4()))])
    if ch.up and not ch.transfer_pending:
        await ch.executor.parse_all()    # switch_ivr_parse_all_events after park returns
        if ch.up and not ch.transfer_pending:
            ch.fell_through = ch.log.fell_through = True
            ch.note("the agent let go of the call: dialplan continues after socket")


# -- dialplan-only applications (registered on the executor) ----------------------------------------------


async def app_callcenter(ch: Channel, arg: str) -> None:
    """`callcenter <queue>`: the member waits with music until hangup or a `cc_exit_keys` digit."""
    queue = arg.strip()
    stay = QueueStay(queue=queue, t_join=time.monotonic(), moh=ch.lookup("cc_moh_override") or "")
    ch.log.queue.append(stay)
    ch.in_queue = True
    ch.variables.update(cc_queue=queue, cc_member_uuid=str(uuidlib.uuid4()),
                        cc_queue_joined_epoch=str(int(time.time())))
    ch.fire_custom("callcenter::info", None, extra=[("CC-Queue", queue), ("CC-Action", "member-queue-start"),
                                                    ("CC-Member-Session-UUID", ch.uuid)])
    exit_keys = ch.variables.get("cc_exit_keys", "")
    seen = len(ch.log.dtmf)

    def leave() -> bool:
        return not ch.up or any(d in exit_keys for _, d in ch.log.dtmf[seen:])

    await ch.wait_until(leave, None)
    ch.in_queue = False
    stay.t_leave = time.monotonic()
    if ch.up:
        key = next(d for _, d in ch.log.dtmf[seen:] if d in exit_keys)
        ch.variables.update(cc_cause="cancel", cc_cancel_reason="EXIT_WITH_KEY", cc_exit_key=key)
        stay.cancel_reason = "EXIT_WITH_KEY"
    else:
        ch.variables.update(cc_cause="cancel", cc_cancel_reason="BREAK_OUT")
        stay.cancel_reason = "BREAK_OUT"
    ch.fire_custom("callcenter::info", None, extra=[("CC-Queue", queue), ("CC-Action", "member-queue-end"),
                                                    ("CC-Cancel-Reason", stay.cancel_reason),
                                                    ("CC-Member-Session-UUID", ch.uuid)])


async def app_event(ch: Channel, arg: str) -> None:
    """`event Event-Name=CUSTOM,Event-Subclass=a::b,k=v`: fires it with the channel's data."""
    pairs = [item.partition("=") for item in separate_string(arg, ",", 128)]
    headers = [(k, v) for k, sep, v in pairs if sep and k]
    name = next((v for k, v in headers if k == "Event-Name"), "CUSTOM")
    subclass = next((v for k, v in headers if k == "Event-Subclass"), None)
    extra = [(k, v) for k, v in headers if k not in ("Event-Name", "Event-Subclass")]
    ch.log.fired.append((name, subclass, dict(extra)))
    ch.fire(name, extra, subclass=subclass)


async def app_bridge(ch: Channel, arg: str) -> None:
    """No endpoint answers in the simulator: the bridge fails at once (continue_on_fail decides the rest)."""
    ch.variables.update(originate_disposition="NO_ROUTE_DESTINATION", last_bridge_to="")
    ch.variables["current_application_response"] = "NO_ROUTE_DESTINATION"


async def app_voicemail(ch: Channel, arg: str) -> None:
    """The caller is in voicemail until hangup."""
    ch.log.voicemail = arg
    await ch.wait_until(lambda: not ch.up, None)


DIALPLAN_APPS = {"callcenter": app_callcenter, "event": app_event, "bridge": app_bridge,
                 "voicemail": app_voicemail}
