"""CallStream, the synchronous audio side of a fork: frames counted, stream time kept, the stream held at each
turn check until the signals come back, live frames, the caller channel of a stereo fork and its echo gate.

A scripted VAD (a frame is voice when its first sample is not zero) keeps these tests to the stream itself; the
thresholds are passed in a VadConfig, so they hold whatever the defaults become."""

from __future__ import annotations

import numpy as np
import pytest

from agent.config import VadConfig
from agent.media.endpointing import SpeechEnded, SpeechStarted, TurnCheck
from agent.media.turn_end import NO_SIGNALS, TurnSignals
from agent.worker.live import LiveFrame
from agent.worker.stats import WorkerStats
from agent.worker.stream import CallStream

RATE = 16000
FRAME = 640  # bytes in 20 ms at 16 kHz
CFG = VadConfig(min_speech_ms=60, barge_in_ms=0, prefix_pad_ms=0, end_silence_ms=400, sentence_end_ms=100,
                audio_model_ms=200, pause_ms=100, speculative_ms=0, barge_in_confirm_ms=60, smart_turn=False,
                max_utterance_s=30.0)


class ScriptedVad:
    def __init__(self) -> None:
        self.seen: list[tuple[bytes, int]] = []

    def is_speech(self, frame: bytes, rate: int) -> bool:
        self.seen.append((frame, rate))
        return np.frombuffer(frame[:2], "<i2")[0] != 0


def voiced(i: int, n: int = FRAME) -> bytes:
    """A voiced frame whose samples carry its number, so frames can be told apart downstream."""
    return np.full(n // 2, 1000 + i, "<i2").tobytes()


def silent(n: int = FRAME) -> bytes:
    return bytes(n)


def stream(vad: ScriptedVad | None = None, **kw: object) -> tuple[CallStream, WorkerStats]:
    stats = WorkerStats()
    return CallStream(kw.pop("rate", RATE), CFG, stats, vad=vad or ScriptedVad(), **kw), stats  # type: ignore[arg-type]


def test_messages_bytes_odd_messages_and_frames_are_counted():
    s, stats = stream()
    s.feed(silent() + b"\0")  # one frame and one byte held back: an odd message
    s.feed(silent(FRAME - 1))  # completes the second frame
    s.feed(silent(FRAME * 3))
    assert (stats.messages, stats.bytes, stats.odd_frames, stats.frames) == (3, FRAME * 5, 2, 5)
    assert s.stream_s == 5 * 0.02


def test_stream_time_is_samples_over_the_rate_at_8k():
    s, stats = stream(rate=8000)
    events = s.feed(silent(320) * 10 + b"".join(voiced(i, 320) for i in range(10)))
    started = [e for e in events if isinstance(e, SpeechStarted)]
    # The first voiced frame starts at 10 × 20 ms; it is confirmed at the end of the third.
    assert started and started[0].at == 0.2 and round(started[0].confirmed_at, 6) == 0.26
    assert stats.frames == 20 and s.stream_s == 0.4


def test_without_hold_every_frame_runs_and_the_silence_alone_ends_the_turn():
    s, stats = stream()
    events = s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 30)
    assert s.held is None and stats.frames == 40
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and ended[0].eot.reason == "silence"


def test_the_stream_holds_at_a_turn_check_until_the_signals_come_back():
    s, stats = stream(hold=True)
    events = s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 30)
    check = events[-1]
    assert isinstance(check, TurnCheck) and s.held is check
    assert stats.frames == 10 + 5  # the check came after 100 ms of silence; the rest waits
    assert round(s.stream_s, 6) == 0.3
    assert s.feed(silent()) == [] and stats.frames == 15  # still held: frames queue, none runs
    ended = s.resolve(TurnSignals(text="주문 취소해 주세요"))
    # A sentence-final transcript at the check ends the turn there, not at the fallback silence.
    assert [type(e) for e in ended] == [SpeechEnded] and ended[0].eot.reason == "sentence_end"
    assert round(ended[0].decided_at, 6) == round(check.at, 6) == 0.3
    assert stats.frames == 41 and s.held is None  # then the frames held back ran


def test_an_open_transcript_lets_the_stream_go_on_to_the_next_check_then_the_fallback():
    s, _ = stream(hold=True)
    first = s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 30)[-1]
    second = s.resolve(NO_SIGNALS)
    assert isinstance(second[-1], TurnCheck) and second[-1].at > first.at and s.held is second[-1]
    rest = s.resolve(NO_SIGNALS)
    assert [e.eot.reason for e in rest if isinstance(e, SpeechEnded)] == ["silence"]


def test_resolve_without_a_held_check_only_runs_the_backlog():
    s, _ = stream(hold=True)
    assert s.resolve(TurnSignals(text="네")) == []
    assert s.held is None


def test_flush_ends_a_held_utterance_and_the_stream_still_holds_afterwards():
    s, stats = stream(hold=True)
    s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 6)
    assert s.held is not None
    flushed = s.flush()
    ended = [e for e in flushed if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and ended[0].forced and stats.frames == 16 and s.held is None
    # The next utterance is held at its check again.
    later = s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 30)
    assert isinstance(later[-1], TurnCheck) and s.held is later[-1]


def test_flush_of_a_quiet_stream_gives_nothing():
    s, _ = stream()
    s.feed(silent() * 3)
    assert s.flush() == []


def test_live_frames_are_the_utterance_after_its_confirmation_in_order():
    s, _ = stream(live=True)
    speech = [voiced(i) for i in range(10)]
    sil = [silent()] * 30
    events = s.feed(b"".join(speech + sil))
    live = [e.frame for e in events if isinstance(e, LiveFrame)]
    started = next(e for e in events if isinstance(e, SpeechStarted))
    assert started.audio == b"".join(speech[:3])  # the confirming frames travel with SpeechStarted
    end = [i for i, e in enumerate(events) if isinstance(e, SpeechEnded)][0]
    n_live_before_end = sum(isinstance(e, LiveFrame) for e in events[:end])
    assert live[:7] == speech[3:] and n_live_before_end == len(live)
    assert all(f == silent() for f in live[7:])
    s2, _ = stream()
    assert not [e for e in s2.feed(b"".join(speech + sil)) if isinstance(e, LiveFrame)]


def test_the_caller_audio_kept_is_what_was_processed_and_is_taken_once():
    s, _ = stream(keep_caller=True)
    data = b"".join(voiced(i) for i in range(4)) + silent()
    s.feed(data + b"\1")  # the odd byte is not a frame yet
    assert s.take_caller_audio() == data
    assert s.take_caller_audio() == b""
    s2, _ = stream()
    s2.feed(data)
    assert s2.take_caller_audio() == b""


def _stereo(left: np.ndarray, right: np.ndarray) -> bytes:
    return np.stack([left, right], axis=1).astype("<i2").reshape(-1).tobytes()


def test_a_stereo_fork_gives_the_vad_the_caller_channel_only():
    vad = ScriptedVad()
    s, stats = stream(vad, channels=2, keep_caller=True)
    left = np.arange(1, 321, dtype=np.int16)  # one 20 ms frame of the caller
    right = np.full(320, -7, np.int16)
    s.feed(_stereo(left, right)[:1000])
    s.feed(_stereo(left, right)[1000:])
    assert vad.seen == [(left.astype("<i2").tobytes(), RATE)]
    assert s.take_caller_audio() == left.astype("<i2").tobytes() and stats.frames == 1


def test_on_a_stereo_fork_the_agents_echo_is_gated_and_the_caller_is_not():
    rng = np.random.default_rng(5)
    agent = (rng.standard_normal(RATE) * 6000).clip(-32000, 32000)
    delay = 60 * RATE // 1000
    echo = np.concatenate([np.zeros(delay), agent[:-delay] * 0.4])
    s, stats = stream(channels=2)
    events = s.feed(_stereo(echo.round(), agent.round()))
    assert not [e for e in events if isinstance(e, SpeechStarted)]
    assert stats.echo_frames == 47  # each voiced frame once: 50 frames less the 60 ms delay's digital silence
    caller = (rng.standard_normal(RATE // 2) * 6000).round()
    s2, stats2 = stream(channels=2)
    events = s2.feed(_stereo(caller, np.zeros(caller.size)))
    assert [e for e in events if isinstance(e, SpeechStarted)] and stats2.echo_frames == 0


def test_without_a_vad_given_the_configured_webrtc_vad_is_used():
    with pytest.raises(ValueError, match="aggressiveness must be 0..3, got 4"):
        CallStream(RATE, VadConfig(aggressiveness=4), WorkerStats())
    s = CallStream(RATE, VadConfig(aggressiveness=3), WorkerStats())
    assert s.feed(silent() * 20) == [] and s.stream_s == 0.4


def test_the_policy_the_session_reads_decides_as_the_stream_does():
    # The session asks `stream.policy` whether an audio-model score could change the turn end at a check.
    s, _ = stream(hold=True)
    check = s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 30)[-1]
    signals = TurnSignals(text="감사합니다")
    assert s.policy.decide(check.silence_ms, signals) is not None
    assert [e.eot.reason for e in s.resolve(signals) if isinstance(e, SpeechEnded)] == ["sentence_end"]


def test_flush_runs_the_whole_backlog_unheld_before_ending():
    s, stats = stream(hold=True)
    s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 30)  # held at the first check, 25 frames waiting
    flushed = s.flush()
    # The queued silence reaches the fallback: the turn ends on silence, not cut short by the flush.
    assert [e.eot.reason for e in flushed if isinstance(e, SpeechEnded)] == ["silence"]
    assert stats.frames == 40 and s.held is None


def test_a_flushed_utterance_ends_at_the_stream_time():
    s, _ = stream()
    s.feed(b"".join(voiced(i) for i in range(10)) + silent() * 2)
    (ended,) = s.flush()
    assert isinstance(ended, SpeechEnded) and ended.forced and round(ended.decided_at, 6) == 0.24
    s2, _ = stream()
    s2.feed(voiced(0) + silent())  # an onset not yet confirmed is dropped at the stream time
    (dropped,) = s2.flush()
    assert round(dropped.at, 6) == 0.04
