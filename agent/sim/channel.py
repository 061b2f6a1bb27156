"""One simulated inbound call leg (freeswitch.md §1.3, §1.7, §1.8, §5, §10).

Owns the channel state, variables, caller profile and media bugs, and fires its events; its trip through
the project's dialplan XML (`socket`, transfers, the human queue) is in agent/sim/callflow.py. A transfer
keeps the channel, its variables and its media bugs, as on FreeSWITCH; only hangup or
`uuid_audio_fork … stop` ends a fork.
"""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from agent.sim.api import Q850, str2cause
from agent.sim.audio import CODEC_RATES
from agent.sim.callflow import DIALPLAN_APPS, run_dialplan
from agent.sim.dialplan import expand
from agent.sim.dtmf import InbandDetector
from agent.sim.events import SimEvent
from agent.sim.executor import Executor
from agent.sim.fork import ForkBug
from agent.sim.frame import deliver_frame
from agent.sim.listener import OutboundListener
from agent.sim.log import CallLog, ForkLog, Transfer
from agent.sim.media import Mouth
from agent.sim.notify import Notifier
from agent.sim.recorder import Recorder

if TYPE_CHECKING:
    from agent.sim.freeswitch import FreeSwitchSim
    from agent.sim.media import EchoLine
    from agent.sim.scenario import CallScript

STATE_NUMBERS = {"CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
                 "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8,
                 "CS_RESET": 9, "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12}
CLOSE_WAIT_S = 3.0
REPORTING_GAP_S = 0.3  # hangup hooks run before CS_REPORTING: an agent that leaves on the linger notice misses it


class Channel:
    def __init__(self, sim: FreeSwitchSim, script: CallScript):
        self.sim = sim
        self.speed = sim.speed
        self.uuid = str(uuidlib.uuid4())
        self.caller = script.caller
        self.destination = script.destination
        self.name = f"sofia/external/{script.caller}@127.0.0.1"
        self.created_us = int(time.time() * 1_000_000)
        self.answered_us = 0
        self.log = CallLog(uuid=self.uuid, name=script.name, t_start=time.monotonic())
        self.state, self.call_state, self.answer_state = "CS_EXECUTE", "RINGING", "ringing"
        self.context, self.dialplan = "public", "XML"
        self.hangup_cause: str | None = None
        self.hangup_by: str | None = None
        self.up, self.answered, self.early = True, False, False
        self.transferred = self.fell_through = self.controlled = False
        self.transfer_pending = False      # CF_TRANSFER: the current extension stops, the channel re-routes
        self.in_dialplan = self.in_queue = False
        self.socket_ran = False            # the dialplan reached `socket`: later transfers leave the agent
        self.early_events: list[SimEvent] = []   # fired before `socket` (delivered late with late_events)
        self.socket_data = ""
        self.script_variables = dict(script.variables)
        self.codec = script.codec
        self.codec_rate = CODEC_RATES[script.codec]
        self.variables = self._initial_variables(script.variables)
        self.executor = Executor(self, extra_apps=DIALPLAN_APPS)
        self.recorder = Recorder(self)
        self.reader: asyncio.Task[None] | None = None
        self.bugs: dict[str, ForkBug] = {}
        self._all_bugs: list[ForkBug] = []
        self.echo = script.echo
        self.echo_lines: dict[int, EchoLine] = {}      # per fork rate (agent/sim/frame.py)
        self.inband_dtmf: InbandDetector | None = None     # start_dtmf's media bug
        self.mouth = Mouth(speed=sim.speed, codec=script.codec if sim.narrowband else None,
                           deliver=self._deliver_packet,
                           rates=lambda: [b.rate for b in self.bugs.values()], on_done=self.notify)
        self.listener: OutboundListener | None = None
        self.playback_starts = 0
        self.started = asyncio.Event()     # connected to the agent, or given up
        self.over = asyncio.Event()        # agent done with the caller: down, transferred, fell through
        self.script_done = asyncio.Event()
        self._notifier = Notifier()

    # -- state --------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """switch_channel_ready: up, and no transfer waiting to re-route the channel."""
        return self.up and not self.transfer_pending

    @property
    def media_ready(self) -> bool:
        return self.up and (self.answered or self.early)

    def notify(self) -> None:
        self._notifier.notify()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        return await self._notifier.wait_until(predicate, timeout)

    def note(self, text: str) -> None:
        self.log.notes.append(text)

    def set_var(self, name: str, value: str | None) -> None:
        if value is None:
            self.variables.pop(name, None)
        else:
            self.variables[name] = value

    def lookup(self, name: str) -> str | None:
        """switch_channel_get_variable: channel variables, the caller profile, then the globals."""
        if name == "destination_number":
            return self.destination
        if name in ("caller_id_number", "ani"):
            return self.variables.get(name, self.caller)
        value = self.variables.get(name)
        return value if value is not None else self.sim.dialplan.globals.get(name)

    def expand(self, text: str) -> str:
        """${var} expansion of app data (switch_channel_expand_variables)."""
        return expand(text, self.lookup)

    def _initial_variables(self, extra: dict[str, str]) -> dict[str, str]:
        host = self.sim.agent_addrs[0][0]
        out = {
            "direction": "inbound", "uuid": self.uuid, "session_id": str(self.sim.next_session_id()),
            "sip_from_user": self.caller, "sip_from_uri": f"{self.caller}@127.0.0.1",
            "sip_to_user": self.destination, "sip_req_user": self.destination,
            "sip_call_id": f"{uuidlib.uuid4().hex}@127.0.0.1", "sip_network_ip": "127.0.0.1",
            "channel_name": self.name, "call_uuid": self.uuid, "read_codec": self.codec,
            "read_rate": str(self.codec_rate), "original_read_codec": self.codec,
            "original_read_rate": str(self.codec_rate), "write_codec": self.codec,
            "write_rate": str(self.codec_rate), "dialplan": "XML", "context": "public",
            "ai_did": self.destination, "playback_terminators": "none",
            "caller_id_number": self.caller, "domain_name": self.sim.dialplan.globals.get("domain_name", ""),
            "socket_host": host,
        }
        out.update({str(k): str(v) for k, v in extra.items()})
        return out

    # -- events (§1.8) ------------------------------------------------------------------------------

    def _profile(self, prefix: str) -> list[tuple[str, str]]:
        fields = [("Direction", "inbound"), ("Logical-Direction", "inbound"), ("Username", self.caller),
                  ("Dialplan", self.dialplan), ("Caller-ID-Name", self.caller),
                  ("Caller-ID-Number", self.caller), ("Orig-Caller-ID-Name", self.caller),
                  ("Orig-Caller-ID-Number", self.caller), ("Network-Addr", "127.0.0.1"), ("ANI", self.caller),
                  ("Destination-Number", self.destination), ("Unique-ID", self.uuid), ("Source", "mod_sofia"),
                  ("Context", self.context), ("Channel-Name", self.name), ("Profile-Index", "1"),
                  ("Profile-Created-Time", str(self.created_us)),
                  ("Channel-Created-Time", str(self.created_us)),
                  ("Channel-Answered-Time", str(self.answered_us)), ("Channel-Progress-Time", "0"),
                  ("Channel-Progress-Media-Time", "0"), ("Channel-Hangup-Time", "0"),
                  ("Channel-Transfer-Time", "0"), ("Channel-Resurrect-Time", "0"),
                  ("Channel-Bridged-Time", "0"), ("Channel-Last-Hold", "0"), ("Channel-Hold-Accum", "0"),
                  ("Screen-Bit", "true"), ("Privacy-Hide-Name", "false"), ("Privacy-Hide-Number", "false")]
        return [(f"{prefix}-{k}", v) for k, v in fields]

    def channel_data(self) -> list[tuple[str, str]]:
        """switch_channel_event_set_basic_data + the Caller-* profile."""
        data = [("Channel-State", self.state), ("Channel-Call-State", self.call_state),
                ("Channel-State-Number", str(STATE_NUMBERS[self.state])), ("Channel-Name", self.name),
                ("Unique-ID", self.uuid), ("Call-Direction", "inbound"),
                ("Presence-Call-Direction", "inbound"),
                ("Channel-HIT-Dialplan", "true"), ("Channel-Call-UUID", self.uuid),
                ("Answer-State", self.answer_state)]
        if self.hangup_cause:
            data.append(("Hangup-Cause", self.hangup_cause))
        rate = str(self.codec_rate)
        data += [("Channel-Read-Codec-Name", self.codec), ("Channel-Read-Codec-Rate", rate),
                 ("Channel-Read-Codec-Bit-Rate", "64000"), ("Channel-Write-Codec-Name", self.codec),
                 ("Channel-Write-Codec-Rate", rate), ("Channel-Write-Codec-Bit-Rate", "64000")]
        return data + self._profile("Caller")

    def connect_reply_headers(self) -> list[tuple[str, str]]:
        """The CHANNEL_DATA block answering `connect` (serialized with no outer Content-Length, §1.3)."""
        event = self.sim.events.make("CHANNEL_DATA",
                                     channel_data=self._profile("Channel") + self.channel_data(),
                                     variables=list(self.variables.items()))
        return event.headers + [("Content-Type", "command/reply"), ("Reply-Text", "+OK\n"),
                                ("Socket-Mode", "async"),
                                ("Control", "full" if self.sim.full else "single-channel")]

    def fire(self, name: str, extra: Iterable[tuple[str, str]] = (), *, subclass: str | None = None,
             body: str | None = None) -> None:
        event = self.sim.events.make(name, channel_data=self.channel_data(),
                                     variables=list(self.variables.items()), extra=extra,
                                     subclass=subclass, body=body)
        if self.sim.late_events and not self.socket_ran:
            self.early_events.append(event)    # §9: seen late, after the socket subscribed
        self.sim.fire(event)

    def fire_custom(self, subclass: str, body: str | None, extra: Iterable[tuple[str, str]] = ()) -> None:
        self.fire("CUSTOM", extra, subclass=subclass, body=body)

    # -- call control -------------------------------------------------------------------------------

    def answer(self) -> None:
        if self.answered or not self.up:
            return
        self.answered, self.answer_state, self.call_state = True, "answered", "ACTIVE"
        self.log.answered_at = time.monotonic()
        self.answered_us = int(time.time() * 1_000_000)
        self.fire("CHANNEL_ANSWER")
        self.notify()

    def pre_answer(self) -> bool:
        if not self.up:
            return False
        if not (self.answered or self.early):
            self.early, self.answer_state, self.call_state = True, "early", "EARLY"
            self.fire("CHANNEL_PROGRESS_MEDIA")
        return True

    def hangup(self, cause: str, by: str) -> None:
        """switch_channel_perform_hangup: CHANNEL_HANGUP now; the channel thread unwinds after."""
        if not self.up:
            return
        self.up = False
        self.hangup_cause = str2cause(cause)
        self.hangup_by = by
        self.variables["hangup_cause"] = self.hangup_cause
        self.variables["hangup_cause_q850"] = str(Q850.get(self.hangup_cause, 16))
        self.answer_state, self.call_state = "hangup", "HANGUP"
        self.log.hangup_cause = self.hangup_cause
        listener = self.listener
        if listener is not None and listener.linger is None and not self.sim.hangup_event_on_no_linger:
            listener.channel_down()        # closed before CHANNEL_HANGUP is dispatched (§1.7)
        self.fire("CHANNEL_HANGUP")
        if listener is not None:
            listener.channel_down()
        self._stop_media()
        self.executor.wake()
        self.over.set()
        self.notify()

    def transfer(self, ext: str, dialplan: str | None, context: str | None, *, via: str) -> bool:
        """switch_ivr_session_transfer: same channel, variables and media bugs kept; CF_TRANSFER ends
        park and the running app, and the channel re-routes to `ext` in `context`."""
        if not self.up:
            return False
        if via == "transfer_app" and self.in_dialplan:
            via = "dialplan"
        dialplan = dialplan or self.variables.get("force_transfer_dialplan") or self.dialplan
        context = context or self.variables.get("force_transfer_context") or self.context
        now = time.monotonic()
        record = Transfer(ext, dialplan, context, now, via)
        self.log.transfers.append(record)
        if self.log.transfer is None and self.socket_ran:
            # The call leaves the agent: which media bugs went along (they keep streaming, §10).
            self.log.transfer = record
            self.log.bugs_at_transfer = sorted(self.bugs)
            for bug in self.bugs.values():
                bug.log.attached_at_transfer = True
        self.transferred = self.transfer_pending = True
        self.destination, self.dialplan, self.context = ext, dialplan, context
        self.set_var("transfer_source", f"{int(time.time())}:{self.uuid}:bl_xfer:{ext}/{context}/{dialplan}")
        self.executor.wake()
        self.over.set()
        self.notify()
        return True

    def dtmf(self, digit: str, source: str = "RTP") -> None:
        """A digit from the caller (RFC 2833, or in-band once start_dtmf runs): DTMF event (no variable_*);
        may end playback (§4)."""
        self.log.dtmf.append((time.monotonic(), digit))
        self.fire("DTMF", [("DTMF-Digit", digit), ("DTMF-Duration", "2000"), ("DTMF-Source", source)])
        self.notify()
        terminators = self.variables.get("playback_terminators", "*")
        if terminators.lower() == "any":
            terminators = "1234567890*#"
        if self.executor.playing and terminators.lower() != "none" and digit in terminators:
            self.set_var("playback_terminator_used", digit)
            self.executor.break_current()

    def playback_started(self) -> None:
        self.playback_starts += 1
        self.notify()

    # -- mod_audio_fork bugs -------------------------------------------------------------------------

    def start_fork(self, bugname: str, uri: str, mix: str, rate: int, metadata: str | None) -> bool:
        """start_capture: duplicate bug or no rate → failure; otherwise pre-answer and connect."""
        if bugname in self.bugs or rate <= 0 or not self.pre_answer():
            return False
        log = ForkLog(bugname=bugname, url=uri, rate=rate, metadata=metadata)
        self.log.forks.append(log)
        bug = ForkBug(uuid=self.uuid, bugname=bugname, uri=uri, rate=rate,
                      metadata=metadata[:8192] if metadata else None, log=log, fire_custom=self.fire_custom,
                      mix=mix,
                      kill_audio=self.executor.break_current,
                      play_file_path=lambda ext: self.sim.play_file_path(self.uuid, ext),
                      merge_frames=self.sim.merge_frames)
        self.bugs[bugname] = bug
        self._all_bugs.append(bug)
        bug.start()
        return True

    def stop_fork(self, bugname: str, final_text: str | None) -> bool:
        bug = self.bugs.pop(bugname, None)
        if bug is None:
            return False
        bug.log.t_stopped, bug.log.stopped_by = time.monotonic(), "stop"
        bug.close(final_text)
        return True

    def _deliver_packet(self, source: Callable[[int], bytes], late: bool) -> None:
        deliver_frame(self, source, late)

    def detect_dtmf(self, packet: bytes) -> None:
        assert self.inband_dtmf is not None
        digit = self.inband_dtmf.feed(np.frombuffer(packet, dtype="<i2"))
        if digit is not None:
            self.dtmf(digit, source="INBAND_AUDIO")

    def _stop_media(self) -> None:
        self.mouth.stop()
        self.recorder.stop_all()
        for name in list(self.bugs):
            bug = self.bugs.pop(name)
            bug.log.t_stopped, bug.log.stopped_by = time.monotonic(), "hangup"
            bug.close()     # hangup closes without final text (§3.2)

    # -- lifecycle ------------------------------------------------------------------------------------

    def on_listener_closed(self) -> None:
        self.controlled = False
        self.executor.wake()
        self.notify()

    async def run(self) -> None:
        """The channel from routing to teardown; the media clock runs while it is up."""
        self.sim.channels[self.uuid] = self
        clock = asyncio.get_running_loop().create_task(self.mouth.run(), name=f"media-{self.uuid[:8]}")
        try:
            await run_dialplan(self)
            self._stop_media()
            await asyncio.sleep(REPORTING_GAP_S)
            self._teardown()
            await self._close_listener()
        finally:
            clock.cancel()
            self._stop_media()
            # Let every WebSocket finish its close handshake before the caller's loop may end.
            await asyncio.gather(*(bug.wait_closed(CLOSE_WAIT_S) for bug in self._all_bugs))
            self.sim.channels.pop(self.uuid, None)
            self.log.channel_vars = dict(self.variables)
            self.log.t_end = time.monotonic()
            self.log.ended_by = self._ended_by()
            self.started.set()
            self.over.set()

    async def _close_listener(self) -> None:
        reader, listener = self.reader, self.listener
        if reader is None or listener is None:
            return
        await asyncio.wait({reader}, timeout=self.sim.final_timeout_s)
        if not reader.done():
            self.note("agent kept the socket open past the final timeout; the simulator closed it")
            listener.close()
            await asyncio.wait({reader}, timeout=1.0)

    def _teardown(self) -> None:
        """The state machine after hangup: CS_HANGUP, CS_REPORTING, CHANNEL_HANGUP_COMPLETE (§9)."""
        now_us = int(time.time() * 1_000_000)
        self.variables["duration"] = str((now_us - self.created_us) // 1_000_000)
        self.variables["billsec"] = str((now_us - self.answered_us) // 1_000_000 if self.answered_us else 0)
        for state in ("CS_HANGUP", "CS_REPORTING"):
            self.state = state
            self.fire("CHANNEL_STATE")
        self.fire("CHANNEL_HANGUP_COMPLETE")
        if self.listener is not None:
            self.listener.hangup_complete_sent()

    def finish_script(self) -> None:
        self.script_done.set()
        self.notify()

    def _ended_by(self) -> str:
        if self.log.ended_by == "agent_unreachable":
            return "agent_unreachable"
        transfer = self.log.transfer
        if transfer is not None and transfer.via != "dialplan":
            return "transfer"
        if self.fell_through:
            return "fell_through"
        return "agent_hangup" if self.hangup_by == "agent_hangup" else "caller"

