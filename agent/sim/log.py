"""What one simulated call recorded: wire traffic, what the caller heard and said, how it ended.

Times are `time.monotonic()` seconds in the test process, so they compare directly with timestamps the
agent under test takes in the same process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.sim.playout import Segment
from agent.sim.recorder import RecordLog


@dataclass
class CommandRecord:
    """A command the agent sent and what the simulator answered (reply text or api body; None = no reply)."""

    t: float
    line: str
    headers: list[tuple[str, str]]
    body: str | None
    reply: str | None


@dataclass
class EventRecord:
    """An event as delivered on the agent's socket (raw header values, before URL-encoding)."""

    t: float
    name: str
    subclass: str | None
    headers: dict[str, str]
    body: str | None


@dataclass
class Heard:
    """One playback the caller heard (or was cut off from)."""

    path: str                      # file path without the {k=v} prefix
    arg: str                       # the playback argument exactly as given
    headers: dict[str, str]        # the {k=v} params, e.g. {"utt_id": "7", "chunk": "0"}
    app_uuid: str
    t_start: float
    t_stop: float | None = None
    status: str | None = None      # done | break
    ms: int = 0                    # file milliseconds played (variable_playback_ms)
    duration_ms: int = 0           # full file length
    segments: list[Segment] = field(default_factory=list)   # stretches heard without a gap (pauses split)
    fileman: list[tuple[float, str]] = field(default_factory=list)  # uuid_fileman commands while it played

    def gaps(self) -> list[float]:
        """Seconds of silence between consecutive heard segments (a pause, a nested command)."""
        return [b.t_start - a.t_end for a, b in zip(self.segments, self.segments[1:], strict=False)]


@dataclass
class Utterance:
    """One thing the caller said, with the monotonic times of its first and last voiced 20 ms frame."""

    text: str | None
    path: str | None
    injected: bool
    duration_s: float
    t_queued: float
    t_first_voiced: float | None = None
    t_last_voiced: float | None = None
    t_end: float | None = None
    barge_in: bool = False


@dataclass
class Transfer:
    """Where the call went: by the agent (uuid_transfer / transfer app) or by the dialplan fallback."""

    ext: str
    dialplan: str
    context: str
    t: float
    via: str                       # uuid_transfer | transfer_app | dialplan


@dataclass
class ForkLog:
    """One mod_audio_fork bug's WebSocket."""

    bugname: str
    url: str
    rate: int
    metadata: str | None
    connected: bool = False
    connect_failed: str | None = None
    t_connected: float | None = None
    close_code: int | None = None
    closed_by: str | None = None   # sim | server
    frames_sent: int = 0           # binary WebSocket messages
    packets_sent: int = 0          # 20 ms packets inside them
    frames_late: int = 0           # packets sent more than one packet period after their due time
    texts_sent: list[str] = field(default_factory=list)
    server_texts: list[str] = field(default_factory=list)
    attached_at_transfer: bool = False   # the bug was still on the channel when the call left the agent
    bytes_after_transfer: int = 0        # audio bytes streamed to the worker after that transfer
    packets_after_transfer: int = 0      # 20 ms packets among them
    t_stopped: float | None = None       # when the bug left the channel
    stopped_by: str | None = None        # stop (uuid_audio_fork … stop) | hangup

    @property
    def attached(self) -> bool:
        """Still on the channel (neither stopped nor ended by hangup)."""
        return self.t_stopped is None

    @property
    def seconds_after_transfer(self) -> float:
        return self.packets_after_transfer * 0.02


@dataclass
class QueueStay:
    """A wait in a mod_callcenter queue (modelled as music on hold until hangup or an exit key)."""

    queue: str
    t_join: float
    moh: str = ""
    t_leave: float | None = None
    cancel_reason: str | None = None   # BREAK_OUT (hangup) | EXIT_WITH_KEY


@dataclass
class CallLog:
    uuid: str
    name: str = ""
    commands: list[CommandRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    dtmf: list[tuple[float, str]] = field(default_factory=list)
    transfer: Transfer | None = None                      # the first transfer: the call left the agent
    transfers: list[Transfer] = field(default_factory=list)  # every transfer, dialplan ones included
    bugs_at_transfer: list[str] = field(default_factory=list)  # media bugs still attached at that moment
    route: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (context, dest, extensions)
    dials: list[tuple[str, int]] = field(default_factory=list)  # agent hosts the `socket` app tried
    queue: list[QueueStay] = field(default_factory=list)
    fired: list[tuple[str, str | None, dict[str, str]]] = field(default_factory=list)  # `event` app
    voicemail: str | None = None
    recordings: list[RecordLog] = field(default_factory=list)   # uuid_record files
    channel_vars: dict[str, str] = field(default_factory=dict)
    ended_by: str | None = None    # caller | agent_hangup | transfer | fell_through | agent_unreachable
    fell_through: bool = False
    hangup_cause: str | None = None
    closed_after_hangup_complete: bool = False
    forks: list[ForkLog] = field(default_factory=list)
    t_start: float = 0.0
    connected_at: float | None = None
    answered_at: float | None = None
    t_end: float | None = None
    errors: list[str] = field(default_factory=list)   # script failures (timeouts, missing transfer …)
    notes: list[str] = field(default_factory=list)    # things the simulator did not model

    @property
    def fork(self) -> ForkLog | None:
        return self.forks[0] if self.forks else None

    @property
    def fork_bytes_after_transfer(self) -> int:
        """Caller audio every fork streamed after the call left the agent (0 if stopped before it)."""
        return sum(f.bytes_after_transfer for f in self.forks)

    @property
    def fork_seconds_after_transfer(self) -> float:
        return max((f.seconds_after_transfer for f in self.forks), default=0.0)

    def api_commands(self, include_bgapi: bool = False) -> list[str]:
        """The `api` command lines in order, without the `api ` prefix."""
        out = []
        for cmd in self.commands:
            word, _, rest = cmd.line.partition(" ")
            if word.lower() == "api" or (include_bgapi and word.lower() == "bgapi"):
                out.append(rest)
        return out

    def events_named(self, name: str, subclass: str | None = None) -> list[EventRecord]:
        return [e for e in self.events if e.name == name and (subclass is None or e.subclass == subclass)]

    def first_event(self, name: str, after: float = 0.0, subclass: str | None = None) -> EventRecord | None:
        return next((e for e in self.events_named(name, subclass) if e.t >= after), None)

    def first_playback_start_after(self, t: float) -> Heard | None:
        """The first playback the caller heard starting at or after monotonic time `t`."""
        return next((h for h in self.heard if h.t_start >= t), None)

    def response_latencies(self) -> list[float | None]:
        """Per utterance: seconds from its last voiced frame to the next playback start (None if none)."""
        out: list[float | None] = []
        for utt in self.utterances:
            if utt.t_last_voiced is None:
                out.append(None)
                continue
            heard = self.first_playback_start_after(utt.t_last_voiced)
            out.append(None if heard is None else heard.t_start - utt.t_last_voiced)
        return out
