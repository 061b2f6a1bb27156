"""The endpointer's events at their edges, with per-frame decisions and stream times passed in: the exact fields
of each event the worker forwards (onset, started with its audio, continuing, resumed, speculative pause, check,
forced end), one-frame settings, the prefix a new utterance gets after an end, and signals for another utterance.
Thresholds are passed in a VadConfig, so these hold whatever the defaults become."""

from __future__ import annotations

import dataclasses

from agent.config import VadConfig
from agent.media.endpointing import (
    Endpointer,
    SpeculativePause,
    SpeechContinuing,
    SpeechDropped,
    SpeechEnded,
    SpeechOnset,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnCheck,
)
from agent.media.turn_end import TurnSignals

F = 0.02
BASE = VadConfig(min_speech_ms=60, barge_in_ms=0, prefix_pad_ms=100, end_silence_ms=400, sentence_end_ms=100,
                 audio_model_ms=200, pause_ms=60, speculative_ms=0, barge_in_confirm_ms=200, smart_turn=False,
                 max_utterance_s=30.0, tail_drop_db=0.0)


def frame(i: int) -> bytes:
    return (1000 + i % 30000).to_bytes(2, "little") * 320


def index_of(pcm: bytes) -> int:
    return int.from_bytes(pcm[:2], "little") - 1000


def run(pattern: str, **cfg: object) -> tuple[Endpointer, list[object]]:
    """`pattern`: one character per 20 ms frame, `v` voiced, `.` silent; frame i starts at i × 20 ms."""
    ep = Endpointer(dataclasses.replace(BASE, **cfg))
    events: list[object] = []
    for i, c in enumerate(pattern):
        events += ep.push(frame(i), c == "v", round(i * F, 6))
    return ep, events


def of(events: list[object], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_speech_started_carries_the_prefix_and_the_confirming_frames():
    _, events = run("....vvvv")
    (started,) = of(events, SpeechStarted)
    assert (started.utterance, round(started.at, 6), round(started.confirmed_at, 6)) == (1, 0.08, 0.14)
    assert [index_of(started.audio[i:i + 640]) for i in range(0, len(started.audio), 640)] == [0, 1, 2, 3, 4, 5, 6]


def test_one_frame_of_speech_confirms_at_once_without_a_false_resume():
    _, events = run("..vvv", min_speech_ms=20)
    (started,) = of(events, SpeechStarted)
    assert round(started.at, 6) == 0.04 and round(started.confirmed_at, 6) == 0.06
    assert of(events, SpeechResumed) == []


def test_continuing_after_the_confirmation_reports_the_voiced_length():
    _, events = run("vvvvvvvvvvvv")
    assert [(e.utterance, round(e.at, 6), e.voiced_ms) for e in of(events, SpeechContinuing)] == [(1, 0.2, 200)]


def test_continuing_at_the_confirmation_itself():
    _, events = run("vvvv", barge_in_confirm_ms=60)
    assert [(e.utterance, round(e.at, 6), e.voiced_ms) for e in of(events, SpeechContinuing)] == [(1, 0.06, 60)]


def test_a_resume_after_a_pause_says_which_utterance_and_when():
    _, events = run("vvvv...vv")
    assert [(e.utterance, round(e.at, 6), e.voiced_ms) for e in of(events, SpeechPaused)] == [(1, 0.14, 80)]
    assert [(e.utterance, round(e.at, 6)) for e in of(events, SpeechResumed)] == [(1, 0.14)]


def test_the_speculative_pause_and_the_check_describe_the_utterance_so_far():
    _, events = run("..vvvv" + "." * 12, speculative_ms=100, prefix_pad_ms=40)
    (spec,) = of(events, SpeculativePause)
    (check, *_) = of(events, TurnCheck)
    for e in (spec, check):
        assert e.utterance == 1 and round(e.end, 6) == 0.12 and round(e.audio_start, 6) == 0.0
    assert round(check.at, 6) == 0.22 and check.silence_ms == 100


def test_a_speculative_point_between_frames_is_taken_at_the_frame_before():
    # 250 ms is 12.5 frames: the pause is sent at 12 frames of silence (never shorter than the 200 ms pad).
    _, events = run("vvvv" + "." * 15, speculative_ms=250, end_silence_ms=1000, sentence_end_ms=900,
                    audio_model_ms=950)
    assert [round(e.end, 6) for e in of(events, SpeculativePause)] == [0.08]


def test_one_frame_settings_act_on_the_first_frame():
    _, events = run("vvvv.", pause_ms=20, sentence_end_ms=20, audio_model_ms=40)
    assert [round(e.at, 6) for e in of(events, SpeechPaused)] == [0.1]
    assert [round(e.at, 6) for e in of(events, TurnCheck)] == [0.1]
    ep = Endpointer(BASE, start_gap_ms=20)
    ep.push(frame(0), True, 0.0)
    (dropped,) = ep.push(frame(1), False, 0.02)
    assert isinstance(dropped, SpeechDropped) and round(dropped.at, 6) == 0.04


def test_an_utterance_at_its_maximum_length_is_forced_to_end_there():
    _, events = run("..." + "v" * 17 + "..." + "v" * 5, max_utterance_s=0.4, prefix_pad_ms=60)
    (ended, *_) = of(events, SpeechEnded)
    assert ended.forced and round(ended.decided_at, 6) == 0.46 and ended.eot.silence_ms == 60
    assert round(ended.start, 6) == 0.06


def test_the_maximum_length_is_counted_in_whole_frames():
    _, events = run("v" * 1505, max_utterance_s=30.0)
    (ended,) = of(events, SpeechEnded)
    assert round(ended.decided_at, 6) == 30.0


def test_a_flush_reports_the_silence_so_far():
    ep, _ = run("vvvvvv..")
    (ended,) = ep.flush(0.16)
    assert ended.forced and ended.eot.silence_ms == 40 and ended.decided_at == 0.16


def test_after_a_silence_end_the_next_utterance_starts_with_the_quiet_after_the_cut():
    # The turn ends after 400 ms of silence; the audio kept stops 200 ms after the voice; the next onset, right
    # after the end, gets its 100 ms prefix from that unsent silence.
    _, events = run("vvvv" + "." * 20 + "vvv")
    first, second = of(events, SpeechStarted)
    assert [index_of(second.audio[i:i + 640]) for i in range(0, len(second.audio), 640)] == [19, 20, 21, 22, 23,
                                                                                              24, 25, 26]
    assert round(second.at, 6) == 0.48 and of(events, SpeechEnded)[0].eot.reason == "silence"


def test_after_a_forced_end_the_next_utterance_has_no_prefix_of_sent_speech():
    _, events = run("v" * 10 + "vvv", max_utterance_s=0.2)
    first, second = of(events, SpeechStarted)
    assert [index_of(second.audio[i:i + 640]) for i in range(0, len(second.audio), 640)] == [10, 11, 12]


def test_signals_for_another_utterance_are_ignored():
    ep, events = run("vvvv.....")
    assert of(events, TurnCheck)
    assert ep.set_signals(2, TurnSignals(text="감사합니다"), 0.18) == []
    (ended,) = ep.set_signals(1, TurnSignals(text="감사합니다"), 0.18)
    assert ended.eot.reason == "sentence_end"


def test_the_onset_is_sent_at_the_barge_in_length_and_a_dropped_one_says_it_was_sent():
    _, events = run("v.....", barge_in_ms=20, min_speech_ms=100)
    assert [round(e.at, 6) for e in of(events, SpeechOnset)] == [0.0]
    assert [e.onset_sent for e in of(events, SpeechDropped)] == [True]
    _, events = run("vv.....", barge_in_ms=40, min_speech_ms=100)
    assert [e.onset_sent for e in of(events, SpeechDropped)] == [True]  # dropped right at the onset length


def test_no_onset_when_barge_in_is_off_or_not_shorter_than_min_speech():
    for barge_in in (0, 60, 100):
        _, events = run("vv.....vvvv", barge_in_ms=barge_in, min_speech_ms=60)
        assert of(events, SpeechOnset) == []
        assert [e.onset_sent for e in of(events, SpeechDropped)] == [False]


def test_the_quiet_tail_of_a_forced_end_does_not_pad_the_next_utterance():
    # Forced at the maximum length during a silence: the silence after the cut is not used as the next prefix.
    _, events = run("vvvvv" + "." * 15 + "vvv", max_utterance_s=0.4, sentence_end_ms=900, audio_model_ms=950,
                    end_silence_ms=1000)
    assert [e.forced for e in of(events, SpeechEnded)] == [True]
    second = of(events, SpeechStarted)[1]
    assert [index_of(second.audio[i:i + 640]) for i in range(0, len(second.audio), 640)] == [20, 21, 22]


def test_an_onset_is_dropped_after_exactly_the_start_gap_of_silence():
    _, events = run("v......")  # the default start gap: 100 ms, five frames
    assert [round(e.at, 6) for e in of(events, SpeechDropped)] == [0.12]
