"""The synchronous audio side of one forked call: L16 bytes → 20 ms frames → VAD (+ echo gate) → endpointer.

No I/O and no clock: time is samples / rate. At each TurnCheck the stream HOLDS (keeps later frames in a
backlog) until the driver reads the turn signals and calls `resolve`, so the end-of-turn decision depends on
the audio alone, not on how fast the transcript came back.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from agent.config import VadConfig
from agent.media import endpointing
from agent.media import fork_protocol as proto
from agent.media.echo import EchoGate, split_stereo
from agent.media.endpointing import Endpointer, Event, SpeechStarted, TurnCheck
from agent.media.turn_end import NO_SIGNALS, TurnEndPolicy, TurnSignals
from agent.media.vad import FRAME_MS, Vad, WebRtcVad, frame_bytes
from agent.worker.live import LiveFrame


class StreamStats(Protocol):
    messages: int
    bytes: int
    odd_frames: int
    frames: int
    echo_frames: int


class CallStream:
    """Feed binary messages with `feed`; handle the events; after a TurnCheck call `resolve`."""

    def __init__(self, rate: int, vad_cfg: VadConfig, stats: StreamStats, *, vad: Vad | None = None,
                 live: bool = False, channels: int = 1, hold: bool = False, keep_caller: bool = False):
        self.rate = rate
        self.channels = channels
        self._live = live  # also emit each frame of an utterance in progress, for live decoding
        self._hold = hold  # stop at each pause until `resolve` (a driver that reads turn signals)
        self._keep_caller = keep_caller  # collect caller audio for `take_caller_audio`
        self._stats = stats
        self._vad = vad or WebRtcVad(vad_cfg.aggressiveness)
        self._assembler = proto.FrameAssembler(frame_bytes(rate) * channels)
        self.policy = TurnEndPolicy(vad_cfg)
        self._endpointer = Endpointer(vad_cfg, policy=self.policy)
        # Stereo: the right channel (what the caller hears) is the echo reference for the left (the caller).
        self._echo = EchoGate(rate) if channels == 2 else None
        self._frame_samples = rate * FRAME_MS // 1000
        self._samples = 0
        self._backlog: deque[bytes] = deque()
        self._held: TurnCheck | None = None
        self._caller: list[bytes] = []

    @property
    def stream_s(self) -> float:
        """Seconds of audio turned into frames and processed so far."""
        return self._samples / self.rate

    @property
    def held(self) -> TurnCheck | None:
        """The turn check the stream waits at, or None."""
        return self._held

    @property
    def state(self) -> endpointing.State:
        return self._endpointer.state

    def take_caller_audio(self) -> bytes:
        """Caller-channel L16 processed since the last call (for engines that stream the whole call)."""
        data, self._caller = b"".join(self._caller), []
        return data

    def feed(self, data: bytes) -> list[Event | LiveFrame]:
        stats = self._stats
        stats.messages += 1
        stats.bytes += len(data)
        if len(data) % 2:
            stats.odd_frames += 1
        self._backlog.extend(self._assembler.feed(data))
        return self._drain()

    def resolve(self, signals: TurnSignals) -> list[Event | LiveFrame]:
        """The turn signals read at the held check; the turn may end on them, then later frames run."""
        held, self._held = self._held, None
        events: list[Event | LiveFrame] = []
        if held is not None:
            events.extend(self._endpointer.set_signals(held.utterance, signals, self.stream_s))
        events.extend(self._drain())
        return events

    def flush(self) -> list[Event | LiveFrame]:
        """Ends an utterance in progress (backlog first, unheld; a partial frame < 20 ms is dropped)."""
        hold, self._hold = self._hold, False
        events = self.resolve(NO_SIGNALS) if self._held is not None else self._drain()
        self._hold = hold
        events.extend(self._endpointer.flush(self.stream_s))
        return events

    def _drain(self) -> list[Event | LiveFrame]:
        events: list[Event | LiveFrame] = []
        while self._backlog and self._held is None:
            frame = self._backlog.popleft()
            t = self._samples / self.rate
            self._samples += self._frame_samples
            self._stats.frames += 1
            caller = self._split(frame)
            if self._keep_caller:
                self._caller.append(caller)
            voiced = self._vad.is_speech(caller, self.rate)
            if voiced and self._echo is not None and self._echo.is_echo(caller):
                voiced = False  # only the agent's own voice coming back
                self._stats.echo_frames += 1
            found = self._endpointer.push(caller, voiced, t)
            speaking = self._endpointer.state is endpointing.State.SPEAKING
            if self._live and speaking and not any(isinstance(e, SpeechStarted) for e in found):
                events.append(LiveFrame(caller))  # SpeechStarted carries its own audio
            events.extend(found)
            if self._hold and speaking:
                self._held = next((e for e in found if isinstance(e, TurnCheck)), None)
        return events

    def _split(self, frame: bytes) -> bytes:
        if self._echo is None:
            return frame
        caller, heard = split_stereo(frame)
        self._echo.push_reference(heard)
        return caller
