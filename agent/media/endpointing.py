"""End-of-speech detection: a pure QUIET → STARTING → SPEAKING state machine over per-frame VAD decisions.

Time is passed in (stream seconds of each frame's start), so the same audio always gives the same events.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from agent.config import VadConfig
from agent.media.vad import FRAME_MS

# A silence run this long before onset is confirmed drops the candidate: a cough or a click, not speech.
START_GAP_MS = 100
# Silence kept after the last voiced frame: recognisers decode the final phone better with a little tail.
TRAILING_PAD_MS = 200


class State(Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class SpeechStarted:
    utterance: int
    at: float  # stream seconds where the voiced run began
    confirmed_at: float  # end of the frame that completed the minimum speech
    # Prefix padding + speech so far, for decoders that work while the caller is still talking.
    audio: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class SpeechOnset:
    """The caller has been voiced for `barge_in_ms`: enough to stop the agent talking, not yet a turn.

    Sent before min speech confirms the utterance (or drops it as a cough); the controller uses it only to
    barge in, so the caller is heard within ~200 ms while turn-taking still waits for confirmed speech.
    """

    utterance: int  # the number the utterance will get if it is confirmed
    at: float


@dataclass(frozen=True)
class SpeechEnded:
    utterance: int
    start: float  # first voiced frame (same as SpeechStarted.at)
    end: float  # end of the last voiced frame
    audio_start: float  # stream seconds of pcm[0]: `start` minus the prefix padding that was available
    pcm: bytes  # prefix padding + speech + at most TRAILING_PAD_MS of silence
    decided_at: float  # stream seconds when the end was decided
    forced: bool  # max length reached or flushed, rather than ended by silence

    @property
    def eos_wait_ms(self) -> int:
        return round((self.decided_at - self.end) * 1000)


@dataclass(frozen=True)
class SpeechPaused:
    """Silence reached `speculative_ms` inside an utterance: its audio so far, for a speculative ASR pass.

    If the utterance then ends with no further voiced frame, the SpeechEnded audio is byte-identical (same
    last voiced frame, same trailing pad), so the speculative result can be used at once.
    """

    utterance: int
    end: float  # end of the last voiced frame
    audio_start: float
    pcm: bytes


Event = SpeechOnset | SpeechStarted | SpeechPaused | SpeechEnded


class Endpointer:
    """Feed one decision per frame with `push`; it returns the events that frame caused (usually none)."""

    def __init__(self, cfg: VadConfig, *, frame_ms: int = FRAME_MS, start_gap_ms: int = START_GAP_MS,
                 trailing_pad_ms: int = TRAILING_PAD_MS):
        self._frame_s = frame_ms / 1000
        self._pad_frames = cfg.prefix_pad_ms // frame_ms
        self._min_frames = max(1, math.ceil(cfg.min_speech_ms / frame_ms))
        # Barge-in onset only when it comes before the confirmation (0 or >= min speech: off).
        onset = math.ceil(cfg.barge_in_ms / frame_ms) if cfg.barge_in_ms else 0
        self._onset_frames = onset if 0 < onset < self._min_frames else 0
        self._end_frames = max(1, math.ceil(cfg.end_silence_ms / frame_ms))
        self._max_frames = max(1, round(cfg.max_utterance_s * 1000 / frame_ms))
        self._gap_frames = max(1, math.ceil(start_gap_ms / frame_ms))
        self._trail_frames = trailing_pad_ms // frame_ms
        # 0 disables; never shorter than the trailing pad, so the paused audio equals the final audio.
        self._spec_frames = max(cfg.speculative_ms // frame_ms, self._trail_frames) if cfg.speculative_ms else 0
        self._state = State.QUIET
        self._utterance = 0
        # (start time, frame) pairs: the prefix ring while QUIET, the candidate/utterance afterwards.
        self._pre: deque[tuple[float, bytes]] = deque(maxlen=self._pad_frames)
        self._buf: list[tuple[float, bytes]] = []
        self._onset_idx = 0
        self._onset_t = 0.0
        self._voiced = 0
        self._gap = 0
        self._last_voiced_idx = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def utterances(self) -> int:
        """Utterances confirmed so far; also the number of the current one while SPEAKING."""
        return self._utterance

    def push(self, frame: bytes, voiced: bool, t: float) -> list[Event]:
        if self._state is State.QUIET:
            if voiced:
                self._begin_candidate(frame, t)
                return self._maybe_confirm(t)
            self._pre.append((t, frame))
            return []
        self._buf.append((t, frame))
        if voiced:
            self._voiced += 1
            self._gap = 0
            self._last_voiced_idx = len(self._buf) - 1
        else:
            self._gap += 1
        if self._state is State.STARTING:
            if voiced:
                return self._maybe_confirm(t)
            if self._gap >= self._gap_frames:
                self._drop_candidate()
            return []
        if self._gap >= self._end_frames:
            return [self._finish(t + self._frame_s, forced=False)]
        if self._gap and self._gap == self._spec_frames:
            return [self._pause()]
        if len(self._buf) - self._onset_idx >= self._max_frames:
            return [self._finish(t + self._frame_s, forced=True)]
        return []

    def flush(self, t: float) -> list[Event]:
        """Ends an utterance in progress now (stream end or graceful shutdown); an unconfirmed onset is dropped."""
        if self._state is State.SPEAKING:
            return [self._finish(t, forced=True)]
        if self._state is State.STARTING:
            self._drop_candidate()
        return []

    def _begin_candidate(self, frame: bytes, t: float) -> None:
        self._state = State.STARTING
        self._buf = list(self._pre)
        self._pre.clear()
        self._onset_idx = len(self._buf)
        self._buf.append((t, frame))
        self._onset_t = t
        self._voiced = 1
        self._gap = 0
        self._last_voiced_idx = self._onset_idx

    def _maybe_confirm(self, t: float) -> list[Event]:
        if self._voiced < self._min_frames:
            if self._voiced == self._onset_frames:
                return [SpeechOnset(self._utterance + 1, self._onset_t)]
            return []
        self._state = State.SPEAKING
        self._utterance += 1
        audio = b"".join(f for _, f in self._buf)
        return [SpeechStarted(self._utterance, self._onset_t, t + self._frame_s, audio)]

    def _drop_candidate(self) -> None:
        self._state = State.QUIET
        self._pre.extend(self._buf)  # the ring keeps only the newest frames
        self._buf = []

    def _cut(self) -> int:
        return min(self._last_voiced_idx + 1 + self._trail_frames, len(self._buf))

    def _pause(self) -> SpeechPaused:
        return SpeechPaused(
            utterance=self._utterance,
            end=self._buf[self._last_voiced_idx][0] + self._frame_s,
            audio_start=self._buf[0][0],
            pcm=b"".join(f for _, f in self._buf[:self._cut()]),
        )

    def _finish(self, decided_at: float, *, forced: bool) -> SpeechEnded:
        last_t = self._buf[self._last_voiced_idx][0]
        cut = self._cut()
        event = SpeechEnded(
            utterance=self._utterance,
            start=self._onset_t,
            end=last_t + self._frame_s,
            audio_start=self._buf[0][0],
            pcm=b"".join(f for _, f in self._buf[:cut]),
            decided_at=decided_at,
            forced=forced,
        )
        self._state = State.QUIET
        # Silence after the cut may pad the next onset; after a forced end the tail is speech already sent.
        if not forced:
            self._pre.extend(self._buf[cut:])
        self._buf = []
        return event
