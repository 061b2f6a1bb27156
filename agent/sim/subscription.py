"""Which events reach one ESL socket, and in which format (freeswitch.md §1.4, §1.5).

The `myevents` / `event` / `nixevent` / `noevents` / `filter` commands and event_handler()'s delivery
test from mod_event_socket.c: subscription first, then filters, then the myevents uuid rule.
"""

from __future__ import annotations

import json
import re

from agent.sim import wire
from agent.sim.events import SimEvent
from agent.sim.fsutil import EVENT_NAMES, MYEVENTS, name_event


class Subscription:
    def __init__(self, uuid: str):
        self.uuid = uuid
        self.events_on = False                    # LFLAG_EVENTS
        self.myevents = False                     # LFLAG_MYEVENTS
        self.event_list: set[str] = set()
        self.all_events = False                   # event_list[SWITCH_EVENT_ALL]
        self.custom: set[str] = set()             # CUSTOM subclasses (event_hash)
        self.filters: list[tuple[str, str]] | None = None
        self.format = "plain"
        self.notes: list[str] = []

    # -- commands ------------------------------------------------------------------------------------

    def cmd_myevents(self, low: str) -> str:
        if self.myevents:
            return "-ERR aready enabled."
        self.event_list |= MYEVENTS
        self.myevents = self.events_on = True
        if "xml" in low:
            self.format = "xml"
            self.notes.append("event-xml is not serialized by the simulator; plain sent instead")
        if "json" in low:
            self.format = "json"
        return "+OK Events Enabled"

    def cmd_event(self, line: str) -> str:
        """`event [plain|json|xml] NAME … CUSTOM sub1 sub2`: every token after CUSTOM is a subclass."""
        _, sep, rest = line[5:].partition(" ")
        key_count, custom = 0, False
        for i, token in enumerate(rest.split(" ") if sep else []):
            if i == 0 and token.lower() in ("plain", "json", "xml"):
                self.format = token.lower()
                continue
            if custom:
                self.custom.add(token)
                continue
            name = name_event(token)
            if name is None:
                continue
            key_count += 1
            if name == "ALL":
                self.all_events = True
                self.event_list |= set(EVENT_NAMES)
            self.event_list.add(name)
            custom = custom or name == "CUSTOM"
        if not key_count:
            return "-ERR no keywords supplied"
        self.events_on = True
        return f"+OK event listener enabled {self.format}"

    def cmd_nixevent(self, line: str) -> str:
        _, sep, rest = line[8:].partition(" ")
        key_count, custom = 0, False
        for token in rest.split(" ") if sep else []:
            if custom:
                self.custom.discard(token)
                continue
            name = name_event(token)
            if name is None:
                continue
            key_count += 1
            if name == "CUSTOM":
                custom = True
            elif name == "ALL":
                self.all_events = False
                self.event_list.clear()
            else:
                if self.all_events:
                    self.all_events = False
                    self.event_list = set(EVENT_NAMES) - {"ALL"}
                self.event_list.discard(name)
        if not key_count:
            return "-ERR no keywords supplied"
        self.events_on = True
        return "+OK events nixed"

    def cmd_noevents(self) -> str:
        if not self.events_on:
            return "-ERR not listening for events"
        self.events_on = self.all_events = False
        self.event_list.clear()
        self.custom.clear()
        return "+OK no longer listening for events"

    def cmd_filter(self, args: str) -> str:
        """`filter H v` / `filter delete H [v]` / `filter delete all`; a `/…` value is a regex."""
        name, sep, value = args.lstrip(" ").partition(" ")
        if self.filters is None:
            self.filters = []
        if name.lower() == "delete" and sep:
            hname, sep2, hval = value.partition(" ")
            if hname.lower() == "all":
                self.filters = []
            else:
                self.filters = [(n, v) for n, v in self.filters
                                if n.lower() != hname.lower() or (sep2 and v != hval)]
            return f"+OK filter deleted. [{hname}][{hval if sep2 else ''}]"
        if not sep:
            return "-ERR invalid syntax"
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        self.filters.append((name, value))
        return f"+OK filter added. [{name}]=[{value}]"

    # -- delivery ------------------------------------------------------------------------------------

    def wants(self, event: SimEvent) -> bool:
        """event_handler(): subscription, then filters (if any), then the myevents uuid rule."""
        if not self.events_on:
            return False
        send = self.all_events or (event.name in self.event_list and (
            event.name != "CUSTOM" or event.subclass is None or event.subclass in self.custom))
        if send and self.filters:
            send = self._filtered(event)
        if send and self.myevents:
            send = event.get("Unique-ID") == self.uuid or event.get("Job-Owner-UUID") == self.uuid
        return send

    def _filtered(self, event: SimEvent) -> bool:
        """Once a filter exists only events matching one pass; a `-` value vetoes."""
        send = False
        for name, value in self.filters or ():
            hval = event.get(name)
            if hval is None:
                continue
            comp, positive = value, True
            while comp and comp[0] in "+- ":
                positive = {"+": True, "-": False}.get(comp[0], positive)
                comp = comp[1:]
            if send and positive:
                continue
            if value.startswith("/"):
                matched = re.search(comp[1:].removesuffix("/"), hval) is not None
            else:
                matched = hval.lower() == comp.lower()
            if matched:
                if not positive:
                    return False
                send = True
        return send

    def frame(self, event: SimEvent) -> bytes:
        """The event as this socket receives it: text/event-plain, or text/event-json."""
        if self.format == "json":
            obj = dict(event.headers)
            if event.body:
                obj["Content-Length"] = str(len(event.body.encode()))
                obj["_body"] = event.body
            payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
            return wire.frame_event(payload, "json")
        return wire.frame_event(wire.serialize_event(event.headers, event.body))
