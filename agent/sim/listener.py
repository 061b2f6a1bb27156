"""The outbound-socket listener: mod_event_socket's side of one agent connection (freeswitch.md §1.3–§1.7).

parse_command() order and reply texts, the `full` gate, myevents / `event` / filter delivery rules,
`linger`, and the disconnect notices, all as in mod_event_socket.c (checked against v1.10.12).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid as uuidlib
from typing import TYPE_CHECKING

from agent.sim import wire
from agent.sim.api import run_api
from agent.sim.events import SimEvent
from agent.sim.executor import PrivateEvent
from agent.sim.fsutil import atoi, log_level, name_event
from agent.sim.log import CommandRecord, EventRecord
from agent.sim.subscription import Subscription

if TYPE_CHECKING:
    from agent.sim.channel import Channel

CONNECT_TIMEOUT_S = 25.0     # read_packet(listener, &ievent, 25) for the first command
DIAL_TIMEOUT_S = 5.0
READ_SIZE = 65536


class OutboundListener:
    def __init__(self, channel: Channel):
        self.ch = channel
        self.sim = channel.sim
        self.full = channel.sim.full
        self.uuid = channel.uuid
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()          # LFLAG_CONNECTED
        self.closed = asyncio.Event()
        self.subs = Subscription(channel.uuid)
        self.linger: int | None = None            # None: no linger; -1: forever
        self.handling_disco = False               # LFLAG_HANDLE_DISCO
        self.log_on = False
        self._hangup_complete_at: float | None = None
        self._timer: asyncio.Task[None] | None = None
        self._holding = False
        self._held: list[bytes] = []
        self._close_pending = False

    # -- socket ------------------------------------------------------------------------------------

    async def dial(self, host: str, port: int) -> bool:
        """socket_function's connect; refused or unreachable → False (the dialplan moves on)."""
        try:
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                                DIAL_TIMEOUT_S)
        except (OSError, TimeoutError):
            return False
        self.sim.listeners.append(self)
        return True

    async def run(self) -> None:
        """listener_run: the first command within 25 s, then commands until exit or close."""
        assert self._reader is not None
        parser = wire.CommandReader()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        first = True
        agent_closed = True
        try:
            while not self.closed.is_set():
                timeout = max(0.0, deadline - time.monotonic()) if first else None
                data = await asyncio.wait_for(self._reader.read(READ_SIZE), timeout)
                if not data:
                    break
                for cmd in parser.feed(data):
                    keep = self._handle(cmd, first)
                    first = False
                    if not keep:
                        return
                await self._drain()
        except TimeoutError:
            self.ch.note("no command within 25 s of connecting: socket closed (Socket Error)")
            agent_closed = False
        except (ConnectionError, ValueError) as exc:
            self.ch.note(f"agent socket error: {exc}")
        finally:
            self.close(agent_closed=agent_closed)

    def write(self, data: bytes) -> bool:
        if self._writer is None or self._writer.is_closing() or self.closed.is_set():
            return False
        self._writer.write(data)
        return True

    def _emit(self, data: bytes) -> bool:
        """Events and notices: held while a command runs, so its reply goes out first (api_exec is
        synchronous and the listener loop sends queued events only after it)."""
        if self.closed.is_set():
            return False
        if self._holding:
            self._held.append(data)
            return True
        return self.write(data)

    async def _drain(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    def close(self, *, agent_closed: bool = False) -> None:
        """End of listener_run: the final disconnect notice (if the socket still takes it), then close."""
        if self.closed.is_set():
            return
        if self._holding:
            self._close_pending = True         # after the running command's reply
            return
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(wire.disconnect_notice(self.uuid))
            self._writer.close()
        self.closed.set()
        if self in self.sim.listeners:
            self.sim.listeners.remove(self)
        if self._timer is not None:
            self._timer.cancel()
        if agent_closed and self._hangup_complete_at is not None:
            self.ch.log.closed_after_hangup_complete = True
        self.ch.on_listener_closed()

    # -- teardown (§1.7) ------------------------------------------------------------------------------

    def channel_down(self) -> None:
        """The listener notices the channel is down: linger notice, or goodbye and close."""
        if self.closed.is_set() or self.handling_disco:
            return
        self.handling_disco = True
        if self.linger is None:
            self.close()
            return
        self._emit(wire.linger_notice(self.uuid, self.ch.name, self.linger))
        if self.linger >= 0:
            self._timer = asyncio.get_running_loop().create_task(self._linger_timeout(self.linger))

    async def _linger_timeout(self, seconds: int) -> None:
        await asyncio.sleep(seconds)
        self.close()

    def hangup_complete_sent(self) -> None:
        self._hangup_complete_at = time.monotonic()

    # -- events (§1.5) --------------------------------------------------------------------------------

    def offer(self, event: SimEvent) -> None:
        """Delivers `event` if this socket's subscription wants it (events are global, §1.5)."""
        if self.closed.is_set() or not self.subs.wants(event):
            return
        if self._emit(self.subs.frame(event)):
            self.ch.log.events.append(EventRecord(time.monotonic(), event.name, event.subclass,
                                                  wire.join_headers(event.headers), event.body))

    def _deliver_early(self) -> None:
        """§9: on a fresh switch, events fired before the socket connected (the DID extension's `set`s,
        `pre_answer`) reached the socket late, once it subscribed; a client must ignore what it did not
        ask for. Sent after the reply of the subscribing command (they are held meanwhile)."""
        early, self.ch.early_events = self.ch.early_events, []
        for event in early:
            self.offer(event)

    def _noted(self, reply: str) -> str:
        for note in self.subs.notes:
            self.ch.note(note)
        self.subs.notes.clear()
        return reply

    # -- commands (§1.4) ------------------------------------------------------------------------------

    def _handle(self, cmd: wire.ClientCommand, first: bool) -> bool:
        self._holding = True
        try:
            reply, keep = self._dispatch(cmd)
        finally:
            self._holding = False
        if first and not cmd.line.lower().startswith("connect"):
            # Executed, but its reply is never sent: a client waiting for it hangs (§1.3).
            self.ch.log.commands[-1].reply = None
        elif reply is not None:
            self.write(reply)
        held, self._held = self._held, []
        for data in held:
            self.write(data)
        if self._close_pending:
            self._close_pending = False
            self.close()
            return False
        return keep

    def _record(self, cmd: wire.ClientCommand, reply: str | None) -> None:
        self.ch.log.commands.append(CommandRecord(time.monotonic(), cmd.line, cmd.headers, cmd.body, reply))

    def _reply(self, cmd: wire.ClientCommand, text: str, keep: bool = True) -> tuple[bytes, bool]:
        text = text or "-ERR command not found"        # parse_command's `done:` for an empty reply
        self._record(cmd, text)
        return wire.command_reply(text), keep

    def _dispatch(self, cmd: wire.ClientCommand) -> tuple[bytes | None, bool]:
        line = cmd.line
        low = line.lower()
        if low.startswith("exit") or line.startswith("..."):
            return self._reply(cmd, "+OK bye", keep=False)
        if low.startswith("filter "):
            return self._reply(cmd, self.subs.cmd_filter(line[7:]))
        if low.startswith("resume"):
            self.ch.set_var("socket_resume", "true")
            return self._reply(cmd, "+OK")
        if low.startswith("connect"):
            self._record(cmd, "+OK\n")
            first_connect = not self.connected.is_set()
            self.write(wire.serialize_event(self.ch.connect_reply_headers()))
            self.connected.set()
            if first_connect:
                # socket_function parks the moment LFLAG_CONNECTED is set: CHANNEL_PARK fires before any
                # subscription the agent sends next can exist (§9).
                self.ch.fire("CHANNEL_PARK")
            return None, True
        if low.startswith("getvar"):
            _, sep, name = line.partition(" ")
            return self._reply(cmd, (self.ch.variables.get(name, "") if sep else ""))
        if low.startswith("myevents"):
            reply = self._reply(cmd, self._noted(self.subs.cmd_myevents(low)))
            self._deliver_early()
            return reply
        if low.startswith("divert_events"):
            onoff = line[13:].strip(" ")
            text = ("-ERR missing value." if not onoff else
                    "+OK events diverted" if onoff.lower() == "on" else "+OK events not diverted")
            return self._reply(cmd, text)
        if low.startswith("sendmsg"):
            return self._reply(cmd, self._cmd_sendmsg(cmd))
        if not self.full:
            return self._reply(cmd, "")
        if low.startswith("sendevent"):
            return self._reply(cmd, self._cmd_sendevent(cmd))
        if low.startswith("api "):
            name, sep, arg = line[4:].partition(" ")
            body = run_api(self, name, arg if sep else None)
            self._record(cmd, body or wire.NO_REPLY)
            return wire.api_response(body), True
        if low.startswith("bgapi "):
            return self._cmd_bgapi(cmd)
        return self._reply(cmd, self._cmd_other(line, low))

    def _cmd_other(self, line: str, low: str) -> str:
        if low.startswith("log"):
            level_s = line[3:].lstrip(" ").split(" ", 1)[0]
            level = log_level(level_s)
            if level is None:
                return "-ERR invalid log level"
            self.log_on = True
            return f"+OK log level {level_s} [{level}]"
        if low.startswith("linger"):
            self.linger = atoi(line[7:]) if line[6:7] == " " else -1
            return "+OK will linger" if self.linger < 0 else f"+OK will linger {self.linger} seconds"
        if low.startswith("nolinger"):
            self.linger = None
            return "+OK will not linger"
        if low.startswith("nolog"):
            was, self.log_on = self.log_on, False
            return "+OK no longer logging" if was else "-ERR not loging"
        if low.startswith("event"):
            reply = self.subs.cmd_event(line)
            self._deliver_early()
            return reply
        if low.startswith("nixevent"):
            return self.subs.cmd_nixevent(line)
        if low.startswith("noevents"):
            return self.subs.cmd_noevents()
        return ""

    def _cmd_sendmsg(self, cmd: wire.ClientCommand) -> str:
        target = cmd.line[7:].lstrip(" ") or cmd.header("session-id") or ""
        event = PrivateEvent(list(cmd.headers), cmd.body)
        if not target or target == self.uuid:
            self.ch.executor.enqueue(event)
            return "+OK"
        other = self.sim.locate(target)
        if other is None:
            return f"-ERR invalid session id [{target}]"
        other.executor.enqueue(event)
        return "+OK"

    def _cmd_sendevent(self, cmd: wire.ClientCommand) -> str:
        event_uuid = str(uuidlib.uuid4())
        name = name_event(cmd.line[9:].strip(" \t")) or "CUSTOM"
        subclass = cmd.header("Event-Subclass") if name == "CUSTOM" else None
        event = self.sim.events.make(name, subclass=subclass,
                                     extra=[*cmd.headers, ("Event-UUID", event_uuid)],
                                     body=cmd.body)
        self.sim.fire(event)
        return f"+OK {event_uuid}"

    def _cmd_bgapi(self, cmd: wire.ClientCommand) -> tuple[bytes, bool]:
        name, sep, arg = cmd.line[6:].partition(" ")
        job = cmd.header("job-uuid") or str(uuidlib.uuid4())
        reply = f"~Reply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n"
        self._record(cmd, f"+OK Job-UUID: {job}")

        def finish() -> None:
            body = run_api(self, name, arg if sep else None)
            extra = [("Job-UUID", job), ("Job-Owner-UUID", self.uuid), ("Job-Command", name)]
            if sep:
                extra.append(("Job-Command-Arg", arg))
            self.sim.fire(self.sim.events.make("BACKGROUND_JOB", extra=extra, body=body))

        asyncio.get_running_loop().call_soon(finish)
        return wire.command_reply(reply), True
