"""Events as FreeSWITCH builds them: base headers, channel data, variables (freeswitch.md §1.8).

Header order follows switch_event_create → prep_for_delivery (Event-Name … Event-Sequence), then
Event-Subclass, then channel data, then the event's own headers; clients must not rely on it anyway.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate

from agent.sim.fsutil import VARIABLE_EVENTS

# Where FreeSWITCH fires each event: cosmetic Event-Calling-* headers that look like the real ones.
_CALLING = {
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", 2016),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3931),
    "CHANNEL_PROGRESS_MEDIA": ("switch_channel.c", "switch_channel_perform_mark_pre_answered", 3694),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2949),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2972),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", 1649),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", 2023),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3530),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", 958),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2297),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1008),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1219),
    "DTMF": ("switch_channel.c", "switch_channel_queue_dtmf", 681),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1578),
    "CUSTOM": ("mod_audio_fork.c", "responseHandler", 20),
}
_DEFAULT_CALLING = ("switch_event.c", "switch_event_fire_detailed", 2080)


@dataclass
class SimEvent:
    """One fired event: ordered headers (raw, not encoded) and an optional body."""

    name: str
    headers: list[tuple[str, str]]
    subclass: str | None = None
    body: str | None = None
    t: float = field(default_factory=time.monotonic)

    def get(self, name: str) -> str | None:
        """Case-insensitive header lookup, first match (switch_event_get_header)."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


class EventFactory:
    """Stamps base headers and a process-wide Event-Sequence on every event the simulator fires."""

    def __init__(self, core_uuid: str, hostname: str = "callagent-sim", ipv4: str = "127.0.0.1"):
        self.core_uuid = core_uuid
        self.hostname = hostname
        self.ipv4 = ipv4
        self._seq = itertools.count(1)

    def base(self, name: str, subclass: str | None = None) -> list[tuple[str, str]]:
        now = time.time()
        calling = _CALLING.get(name, _DEFAULT_CALLING)
        headers = [
            ("Event-Name", name),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", formatdate(now, usegmt=True)),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", str(calling[2])),
            ("Event-Sequence", str(next(self._seq))),
        ]
        if subclass is not None:
            headers.append(("Event-Subclass", subclass))
        return headers

    def make(self, name: str, *, channel_data: Sequence[tuple[str, str]] = (),
             variables: Iterable[tuple[str, str]] = (), extra: Iterable[tuple[str, str]] = (),
             subclass: str | None = None, body: str | None = None) -> SimEvent:
        """An event of `name`; variables are added only where FreeSWITCH adds them (§1.8)."""
        headers = self.base(name, subclass)
        headers.extend(channel_data)
        if name in VARIABLE_EVENTS:
            headers.extend((f"variable_{k}", v) for k, v in variables)
        headers.extend(extra)
        return SimEvent(name=name, headers=headers, subclass=subclass, body=body)
