"""Endpointing state machine: synthetic per-frame decisions with stream times, then real speech through webrtcvad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
    State,
    TurnCheck,
)
from agent.media.turn_end import TurnSignals
from agent.media.vad import WebRtcVad, frame_bytes

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
F = 0.02  # seconds per frame


def frame(i: int) -> bytes:
    """640 bytes that say which frame they are, so PCM slices can be checked exactly."""
    return (i % 65536).to_bytes(2, "little") * 320


def index_of(pcm_frame: bytes) -> int:
    return int.from_bytes(pcm_frame[:2], "little")


# Barge-in, pause and speculative-ASR hints, not turn events.
HINTS = (SpeechOnset, SpeculativePause, SpeechPaused, TurnCheck, SpeechContinuing, SpeechResumed, SpeechDropped)


def cfg(**kw: object) -> VadConfig:
    """The fixed-silence behaviour these tests pin: an 800 ms fallback and no transcript signals."""
    return VadConfig(**{"end_silence_ms": 800, **kw})


def run(ep: Endpointer, decisions: str, start: int = 0, *, hints: bool = False) -> list[tuple[int, object]]:
    """Pushes one frame per character ('1' voiced, '0' not); returns (frame index, event) pairs.
    The hint events are left out unless `hints`."""
    out = []
    for k, d in enumerate(decisions):
        i = start + k
        out.extend((i, e) for e in ep.push(frame(i), d == "1", i * F) if hints or not isinstance(e, HINTS))
    return out


def frames_in(pcm: bytes) -> list[int]:
    return [index_of(pcm[j:j + 640]) for j in range(0, len(pcm), 640)]


def test_onset_is_confirmed_after_min_speech_and_reports_the_onset_time():
    ep = Endpointer(cfg())
    assert run(ep, "0" * 10 + "1" * 14) == []
    assert ep.state is State.STARTING
    [(i, ev)] = run(ep, "1", start=24)
    assert i == 24
    assert ev == SpeechStarted(1, pytest.approx(10 * F), pytest.approx(25 * F))
    assert ep.state is State.SPEAKING


def test_end_after_800_ms_silence_with_prefix_pad_and_trimmed_tail():
    ep = Endpointer(cfg())
    events = run(ep, "0" * 30 + "1" * 50 + "0" * 39)
    assert [type(e) for _, e in events] == [SpeechStarted]
    [(i, ev)] = run(ep, "0", start=119)  # the 40th silent frame completes 800 ms
    assert isinstance(ev, SpeechEnded) and i == 119
    assert ev.start == pytest.approx(30 * F)
    assert ev.end == pytest.approx(80 * F)
    assert ev.decided_at == pytest.approx(120 * F)
    assert ev.eos_wait_ms == 800
    assert not ev.forced
    # 200 ms prefix (frames 20..29), the speech, then 200 ms of tail (frames 80..89), byte-exact.
    assert frames_in(ev.pcm) == list(range(20, 90))
    assert ev.audio_start == pytest.approx(20 * F)
    assert ep.state is State.QUIET


def test_short_blips_are_ignored_but_short_gaps_inside_an_onset_are_not():
    ep = Endpointer(cfg())
    # 200 ms of "speech" then 100 ms of silence: a blip, dropped.
    assert run(ep, "1" * 10 + "0" * 5 + "0" * 50) == []
    assert ep.state is State.QUIET
    # 10 + 5 voiced frames with a 40 ms gap: 300 ms of speech, confirmed at the 15th voiced frame.
    events = run(ep, "1" * 10 + "00" + "1" * 5, start=65)
    assert len(events) == 1 and events[0][0] == 65 + 16
    assert events[0][1].at == pytest.approx(65 * F)


def test_a_dropped_blip_stays_available_as_prefix_padding():
    ep = Endpointer(cfg())
    run(ep, "0" * 20 + "1" * 3 + "0" * 5)  # blip at frames 20..22, dropped at frame 27
    events = run(ep, "1" * 15 + "0" * 40, start=28)
    ended = [e for _, e in events if isinstance(e, SpeechEnded)][0]
    assert frames_in(ended.pcm)[:10] == list(range(18, 28))


def test_pauses_shorter_than_end_silence_keep_one_utterance():
    ep = Endpointer(cfg())
    events = run(ep, "1" * 20 + "0" * 39 + "1" * 20 + "0" * 40)
    kinds = [type(e) for _, e in events]
    assert kinds == [SpeechStarted, SpeechEnded]
    assert events[1][1].end == pytest.approx(79 * F)


def test_max_utterance_length_forces_an_end_and_a_new_utterance_follows():
    ep = Endpointer(cfg(max_utterance_s=1.0))
    events = run(ep, "1" * 100)
    kinds = [(i, type(e).__name__, e.utterance) for i, e in events]
    # Ends 1.0 s after onset (frame 49), then a new onset needs another 300 ms (15 frames).
    assert kinds == [(14, "SpeechStarted", 1), (49, "SpeechEnded", 1), (64, "SpeechStarted", 2),
                     (99, "SpeechEnded", 2)]
    first = events[1][1]
    assert first.forced and first.end - first.start == pytest.approx(1.0)
    # The forced tail is not replayed as the next utterance's prefix.
    assert frames_in(events[3][1].pcm)[0] == 50


def test_flush_ends_speech_now_and_drops_an_unconfirmed_onset():
    ep = Endpointer(cfg())
    run(ep, "1" * 20 + "0" * 5)
    [ev] = ep.flush(25 * F)
    assert isinstance(ev, SpeechEnded) and ev.forced
    assert ev.eos_wait_ms == 100
    assert ep.flush(26 * F) == []
    run(ep, "1" * 5, start=26)
    assert ep.state is State.STARTING
    assert ep.flush(31 * F) == [SpeechDropped(2, 31 * F, 100, onset_sent=False)] and ep.state is State.QUIET


def test_prefix_pad_is_limited_by_the_audio_available_and_can_be_zero():
    ep = Endpointer(cfg())
    events = run(ep, "00" + "1" * 15 + "0" * 40)
    assert events[1][1].audio_start == 0.0 and frames_in(events[1][1].pcm)[0] == 0
    ep = Endpointer(cfg(prefix_pad_ms=0))
    events = run(ep, "0" * 10 + "1" * 15 + "0" * 40)
    assert frames_in(events[1][1].pcm)[0] == 10


def test_utterances_are_numbered_in_order():
    ep = Endpointer(cfg())
    events = run(ep, ("1" * 20 + "0" * 40) * 3)
    assert [(type(e).__name__, e.utterance) for _, e in events] == [
        ("SpeechStarted", 1), ("SpeechEnded", 1), ("SpeechStarted", 2), ("SpeechEnded", 2),
        ("SpeechStarted", 3), ("SpeechEnded", 3)]
    assert ep.utterances == 3


def _segment_real(path: Path, rate: int) -> tuple[list[object], float]:
    import soundfile as sf

    from agent.media.resample import resample

    audio, sr = sf.read(path, dtype="int16")
    audio = resample(audio, sr, rate)
    audio = np.concatenate([audio, np.zeros(int(rate * 1.2), np.int16)])
    data, n = audio.tobytes(), frame_bytes(rate)
    ep, vad, events = Endpointer(cfg()), WebRtcVad(2), []
    for j in range(0, len(data) - n + 1, n):
        events += ep.push(data[j:j + n], vad.is_speech(data[j:j + n], rate), j / 2 / rate)
    return [e for e in events if not isinstance(e, HINTS)], len(audio) / rate


@pytest.mark.speech
@pytest.mark.parametrize("rate", [8000, 16000])
def test_real_korean_sentence_is_one_utterance(rate):
    clip = SPEECH_DIR / "ko/picovoice/leopard_test_ko.wav"
    if not clip.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    events, total = _segment_real(clip, rate)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1]
    # The sentence is spoken from about 0.7 s to 3.5 s of the 3.9 s file.
    assert 0.3 < ended.start < 1.0 and 3.0 < ended.end < 3.9
    # 800 ms of silence as the VAD hears it, after the last word's fading tail (which `end` leaves out).
    assert ended.eot.reason == "silence" and 800 <= ended.eos_wait_ms <= 1000
    assert len(ended.pcm) == pytest.approx((ended.end - ended.audio_start + 0.2) * rate * 2, abs=rate * 0.05)


@pytest.mark.speech
def test_telephone_band_sentences_with_pauses_split_into_several_utterances():
    clip = SPEECH_DIR / "en/misc/OSR_us_000_0034_8k.wav"
    if not clip.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    events, total = _segment_real(clip, 8000)
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    # Ten sentences; pauses shorter than 800 ms merge some of them.
    assert 5 <= len(ended) <= 10
    assert all(a.end < b.start for a, b in zip(ended, ended[1:], strict=False))
    assert sum(e.end - e.start for e in ended) > 0.6 * (ended[-1].end - ended[0].start)


def test_pause_after_speculative_silence_carries_exactly_the_final_audio():
    ep = Endpointer(cfg(speculative_ms=300))
    events = run(ep, "0" * 10 + "1" * 30 + "0" * 40, hints=True)
    kinds = [(i, type(e)) for i, e in events if isinstance(e, (SpeechStarted, SpeculativePause, SpeechEnded))]
    assert kinds == [(24, SpeechStarted), (54, SpeculativePause), (79, SpeechEnded)]  # 15 silent frames = 300 ms
    pause, end = (e for _, e in events if isinstance(e, (SpeculativePause, SpeechEnded)))
    assert pause.pcm == end.pcm and pause.end == end.end and pause.audio_start == end.audio_start


def test_speech_after_a_pause_pauses_again_and_the_final_audio_differs():
    ep = Endpointer(cfg(speculative_ms=300))
    events = run(ep, "1" * 20 + "0" * 16 + "1" * 10 + "0" * 40, hints=True)
    pauses = [e for _, e in events if isinstance(e, SpeculativePause)]
    [end] = [e for _, e in events if isinstance(e, SpeechEnded)]
    assert len(pauses) == 2 and pauses[0].end < pauses[1].end == end.end
    assert pauses[1].pcm == end.pcm and pauses[0].pcm != end.pcm


def test_speculative_pause_can_be_turned_off():
    ep = Endpointer(cfg(speculative_ms=0))
    assert not [e for _, e in run(ep, "1" * 20 + "0" * 40, hints=True) if isinstance(e, SpeculativePause)]


def test_barge_in_onset_comes_after_160_ms_of_voice_before_confirmation():
    ep = Endpointer(cfg(barge_in_ms=160))
    events = run(ep, "0" * 10 + "1" * 15, hints=True)
    assert [(i, type(e)) for i, e in events] == [(17, SpeechOnset), (24, SpeechStarted)]  # 8 frames = 160 ms
    assert events[0][1] == SpeechOnset(1, pytest.approx(10 * F))
    # A cough: voiced long enough to barge in, not long enough for a turn.
    ep = Endpointer(cfg(barge_in_ms=160))
    events = run(ep, "1" * 9 + "0" * 10, hints=True)
    assert [(i, type(e)) for i, e in events] == [(7, SpeechOnset), (13, SpeechDropped)]  # 5 silent frames
    assert events[1][1] == SpeechDropped(1, pytest.approx(14 * F), 180, onset_sent=True)
    assert ep.utterances == 0
    # Shorter than the barge-in onset: dropped without an onset, so no speech_dropped goes out.
    ep = Endpointer(cfg(barge_in_ms=160))
    assert [e.onset_sent for _, e in run(ep, "1" * 4 + "0" * 5, hints=True)] == [False]


def test_pause_continuing_and_resumed_mark_the_utterance_as_it_goes():
    ep = Endpointer(cfg(barge_in_confirm_ms=500))
    events = run(ep, "1" * 30 + "0" * 12 + "1" * 5 + "0" * 9, hints=True)
    kinds = [(i, type(e).__name__) for i, e in events if not isinstance(e, (SpeechOnset, SpeculativePause))]
    # 500 ms voiced → continuing; 200 ms silence → paused; 240 ms → turn check; voice again → resumed.
    assert kinds == [(14, "SpeechStarted"), (24, "SpeechContinuing"), (39, "SpeechPaused"), (41, "TurnCheck"),
                     (42, "SpeechResumed")]
    by_kind = {type(e): e for _, e in events}
    assert by_kind[SpeechPaused] == SpeechPaused(1, pytest.approx(40 * F), 600)
    check = by_kind[TurnCheck]
    assert (check.silence_ms, check.at, check.end) == (240, pytest.approx(42 * F), pytest.approx(30 * F))
    assert frames_in(check.pcm) == list(range(40))  # speech + the 200 ms trailing pad


def test_turn_checks_come_at_the_short_silence_and_at_the_audio_model_point():
    ep = Endpointer(cfg(end_silence_ms=900))
    checks = [(i, e.silence_ms) for i, e in run(ep, "1" * 30 + "0" * 45, hints=True) if isinstance(e, TurnCheck)]
    assert checks == [(41, 240), (54, 500)]


def test_a_sentence_final_transcript_ends_the_turn_after_the_short_silence():
    ep = Endpointer(cfg(end_silence_ms=900, smart_turn=False))
    events = run(ep, "1" * 30 + "0" * 12, hints=True)
    assert isinstance(events[-1][1], TurnCheck)
    [ended] = ep.set_signals(1, TurnSignals(text="배송 조회해 주세요"), 42 * F)
    assert isinstance(ended, SpeechEnded) and ep.state is State.QUIET
    assert ended.eos_wait_ms == 240 and ended.eot.as_dict() == {
        "reason": "sentence_end", "silence_ms": 240, "sentence_end": True, "smart_turn": None}


def test_an_open_transcript_waits_for_the_fallback_and_voice_clears_the_signals():
    ep = Endpointer(cfg(end_silence_ms=900, smart_turn=False))
    run(ep, "1" * 30 + "0" * 12)
    assert ep.set_signals(1, TurnSignals(text="주문 번호 는"), 42 * F) == []
    assert run(ep, "0" * 32, start=42) == []
    [(i, ended)] = run(ep, "0", start=74)
    assert i == 74 and ended.eot.reason == "silence" and ended.eot.sentence_end is False
    # Signals read at a check do not outlive it: a sure audio score read before more voice ends nothing later.
    ep = Endpointer(cfg(end_silence_ms=900, smart_turn_threshold=0.98))
    run(ep, "1" * 30 + "0" * 12)
    assert ep.set_signals(1, TurnSignals(text="김 전 장관", smart_turn=0.99), 42 * F) == []  # 240 < 500 ms
    run(ep, "1" * 5, start=42)
    assert [e for _, e in run(ep, "0" * 30, start=47) if isinstance(e, SpeechEnded)] == []
    assert ep.state is State.SPEAKING


def test_signals_are_ignored_once_the_caller_spoke_again():
    ep = Endpointer(cfg(smart_turn=False))
    run(ep, "1" * 30 + "0" * 12 + "1")
    assert ep.set_signals(1, TurnSignals(text="네"), 43 * F) == [] and ep.state is State.SPEAKING
