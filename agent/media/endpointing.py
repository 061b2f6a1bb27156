"""End-of-speech detection: a pure QUIET → STARTING → SPEAKING state machine over per-frame VAD decisions.

Time is passed in (stream seconds of each frame's start), so the same audio always gives the same events.
When the turn ends inside SPEAKING is up to agent.media.turn_end: at `sentence_end_ms` and `audio_model_ms` of
silence the endpointer emits a TurnCheck; whoever drives it reads the transcript so far (and the audio model)
and hands the result back with `set_signals` before pushing the next frame, and every silent frame asks the
policy again. (The check is not at `pause_ms`: a streaming decoder's partial lags the audio by a few frames.)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from agent.config import VadConfig
from agent.media.turn_end import NO_SIGNALS, TurnEnd, TurnEndPolicy, TurnSignals
from agent.media.vad import FRAME_MS, SpeechTail

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
class SpeechDropped:
    """An onset candidate that never reached min speech (a cough, a click, a short burst)."""

    utterance: int  # the number it would have had
    at: float  # when it was dropped
    voiced_ms: int
    onset_sent: bool  # a SpeechOnset went out for it, so the controller may have paused the agent


@dataclass(frozen=True)
class SpeechContinuing:
    """The utterance's voiced audio reached `barge_in_confirm_ms`: a real interruption, not a backchannel."""

    utterance: int
    at: float
    voiced_ms: int


@dataclass(frozen=True)
class SpeechPaused:
    """Silence reached `pause_ms` inside an utterance (the caller may be done, or only hesitating)."""

    utterance: int
    at: float  # when the pause was reached
    voiced_ms: int


@dataclass(frozen=True)
class TurnCheck:
    """Silence reached a turn-check point. The driver should read the turn signals now and hand them to
    `Endpointer.set_signals` before the next frame. `pcm` is the utterance audio up to the last voiced frame
    plus the trailing pad (the audio model's input)."""

    utterance: int
    at: float
    silence_ms: int
    end: float  # end of the last voiced frame
    audio_start: float
    pcm: bytes = field(repr=False)


@dataclass(frozen=True)
class SpeechResumed:
    """Voice again after a SpeechPaused of the same utterance."""

    utterance: int
    at: float


@dataclass(frozen=True)
class SpeechEnded:
    utterance: int
    start: float  # first voiced frame (same as SpeechStarted.at)
    end: float  # end of the last voiced frame
    audio_start: float  # stream seconds of pcm[0]: `start` minus the prefix padding that was available
    pcm: bytes  # prefix padding + speech + at most TRAILING_PAD_MS of silence
    decided_at: float  # stream seconds when the end was decided
    eot: TurnEnd

    @property
    def forced(self) -> bool:
        """Max length reached or flushed, rather than ended by silence."""
        return self.eot.reason == "forced"

    @property
    def eos_wait_ms(self) -> int:
        return round((self.decided_at - self.end) * 1000)


@dataclass(frozen=True)
class SpeculativePause:
    """Silence reached `speculative_ms` inside an utterance: its audio so far, for a speculative ASR pass.

    If the utterance then ends with no further voiced frame, the SpeechEnded audio is byte-identical (same
    last voiced frame, same trailing pad), so the speculative result can be used at once.
    """

    utterance: int
    end: float  # end of the last voiced frame
    audio_start: float
    pcm: bytes


Event = (SpeechOnset | SpeechDropped | SpeechStarted | SpeechContinuing | SpeechPaused | TurnCheck | SpeechResumed
         | SpeculativePause | SpeechEnded)


class Endpointer:
    """Feed one decision per frame with `push`; it returns the events that frame caused (usually none)."""

    def __init__(self, cfg: VadConfig, *, frame_ms: int = FRAME_MS, start_gap_ms: int = START_GAP_MS,
                 trailing_pad_ms: int = TRAILING_PAD_MS, policy: TurnEndPolicy | None = None):
        self._frame_ms = frame_ms
        self._frame_s = frame_ms / 1000
        self._pad_frames = cfg.prefix_pad_ms // frame_ms
        self._min_frames = max(1, math.ceil(cfg.min_speech_ms / frame_ms))
        # Barge-in onset only when it comes before the confirmation (0 or >= min speech: off).
        onset = math.ceil(cfg.barge_in_ms / frame_ms) if cfg.barge_in_ms else 0
        self._onset_frames = onset if 0 < onset < self._min_frames else 0
        self._confirm_frames = max(self._min_frames, math.ceil(cfg.barge_in_confirm_ms / frame_ms))
        self._pause_frames = max(1, math.ceil(cfg.pause_ms / frame_ms))
        self._policy = policy or TurnEndPolicy(cfg)
        self._check_frames = {max(1, math.ceil(ms / frame_ms)) for ms in self._policy.check_points_ms()}
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
        # Voiced frames within SpeechTail's range of the loudest: a real interruption is confirmed on these,
        # so a backchannel's fading tail (webrtcvad's hangover) does not count toward it.
        self._loud = 0
        self._gap = 0
        self._vad_gap = 0  # silence as webrtcvad hears it (fading tails voiced): the fallback's count
        self._last_voiced_idx = 0
        self._paused = False  # a SpeechPaused went out since the last voiced frame
        self._checked = False  # a TurnCheck went out since the last voiced frame
        self._signals = NO_SIGNALS
        self._tail = SpeechTail(cfg.tail_drop_db)

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
        now = t + self._frame_s
        # webrtcvad's decision counts toward the voiced length (min speech, barge-in confirmation); inside an
        # utterance a word's fading tail counts as silence (SpeechTail), so the end of turn starts sooner.
        heard = voiced
        loud = self._tail.voiced(frame, voiced)
        if self._state is State.SPEAKING:
            voiced = loud
        if heard:
            self._voiced += 1
            self._vad_gap = 0
        else:
            self._vad_gap += 1
        if heard and loud:
            self._loud += 1
        if voiced:
            resumed = self._paused
            self._gap, self._paused, self._checked, self._signals = 0, False, False, NO_SIGNALS
            self._last_voiced_idx = len(self._buf) - 1
        else:
            self._gap += 1
        if self._state is State.STARTING:
            if voiced:
                return self._maybe_confirm(t)
            if self._gap >= self._gap_frames:
                return self._drop_candidate(now)
            return []
        events: list[Event] = []
        if voiced and resumed:
            events.append(SpeechResumed(self._utterance, t))
        if heard and loud and self._loud == self._confirm_frames:
            events.append(SpeechContinuing(self._utterance, now, self._voiced * self._frame_ms))
        if not voiced:
            if self._gap == self._spec_frames:
                events.append(self._speculative())
            if self._gap == self._pause_frames:
                self._paused = True
                events.append(SpeechPaused(self._utterance, now, self._voiced * self._frame_ms))
            if self._gap in self._check_frames:
                self._checked = True
                events.append(self._check(now))
            ended = self._policy.decide(self._gap * self._frame_ms, self._signals,
                                        vad_silence_ms=self._vad_gap * self._frame_ms)
            if ended is not None:
                return [*events, self._finish(now, ended)]
        if len(self._buf) - self._onset_idx >= self._max_frames:
            events.append(self._finish(now, self._policy.forced(self._gap * self._frame_ms, self._signals)))
        return events

    def set_signals(self, utterance: int, signals: TurnSignals, now: float) -> list[Event]:
        """The turn signals read at this utterance's TurnCheck; the turn may end on them at once (`now` is
        the end of the last frame pushed). Ignored once the caller spoke again or the utterance ended."""
        if self._state is not State.SPEAKING or utterance != self._utterance or not self._checked:
            return []
        self._signals = signals
        ended = self._policy.decide(self._gap * self._frame_ms, signals, vad_silence_ms=self._vad_gap * self._frame_ms)
        return [self._finish(now, ended)] if ended is not None else []

    def flush(self, t: float) -> list[Event]:
        """Ends an utterance in progress now (stream end or graceful shutdown); an unconfirmed onset is dropped."""
        if self._state is State.SPEAKING:
            return [self._finish(t, self._policy.forced(self._gap * self._frame_ms, self._signals))]
        if self._state is State.STARTING:
            return self._drop_candidate(t)
        return []

    def _begin_candidate(self, frame: bytes, t: float) -> None:
        self._state = State.STARTING
        self._tail.reset()
        self._tail.voiced(frame, True)
        self._buf = list(self._pre)
        self._pre.clear()
        self._onset_idx = len(self._buf)
        self._buf.append((t, frame))
        self._onset_t = t
        self._voiced = 1
        self._loud = 1
        self._gap = 0
        self._vad_gap = 0
        self._paused, self._checked, self._signals = False, False, NO_SIGNALS
        self._last_voiced_idx = self._onset_idx

    def _maybe_confirm(self, t: float) -> list[Event]:
        if self._voiced < self._min_frames:
            if self._voiced == self._onset_frames:
                return [SpeechOnset(self._utterance + 1, self._onset_t)]
            return []
        self._state = State.SPEAKING
        self._utterance += 1
        audio = b"".join(f for _, f in self._buf)
        now = t + self._frame_s
        events: list[Event] = [SpeechStarted(self._utterance, self._onset_t, now, audio)]
        if self._loud == self._confirm_frames:
            events.append(SpeechContinuing(self._utterance, now, self._voiced * self._frame_ms))
        return events

    def _drop_candidate(self, now: float) -> list[Event]:
        voiced, onset_sent = self._voiced, 0 < self._onset_frames <= self._voiced
        self._state = State.QUIET
        self._pre.extend(self._buf)  # the ring keeps only the newest frames
        self._buf = []
        return [SpeechDropped(self._utterance + 1, now, voiced * self._frame_ms, onset_sent)]

    def _cut(self) -> int:
        return min(self._last_voiced_idx + 1 + self._trail_frames, len(self._buf))

    def _last_voiced_end(self) -> float:
        return self._buf[self._last_voiced_idx][0] + self._frame_s

    def _speculative(self) -> SpeculativePause:
        return SpeculativePause(
            utterance=self._utterance,
            end=self._last_voiced_end(),
            audio_start=self._buf[0][0],
            pcm=b"".join(f for _, f in self._buf[:self._cut()]),
        )

    def _check(self, now: float) -> TurnCheck:
        return TurnCheck(
            utterance=self._utterance,
            at=now,
            silence_ms=self._gap * self._frame_ms,
            end=self._last_voiced_end(),
            audio_start=self._buf[0][0],
            pcm=b"".join(f for _, f in self._buf[:self._cut()]),
        )

    def _finish(self, decided_at: float, eot: TurnEnd) -> SpeechEnded:
        cut = self._cut()
        event = SpeechEnded(
            utterance=self._utterance,
            start=self._onset_t,
            end=self._last_voiced_end(),
            audio_start=self._buf[0][0],
            pcm=b"".join(f for _, f in self._buf[:cut]),
            decided_at=decided_at,
            eot=eot,
        )
        self._state = State.QUIET
        self._paused, self._checked, self._signals = False, False, NO_SIGNALS
        # Silence after the cut may pad the next onset; after a forced end the tail is speech already sent.
        if eot.reason != "forced":
            self._pre.extend(self._buf[cut:])
        self._buf = []
        return event
