"""Where speech really ends: a word's fading tail that webrtcvad still calls speech counts as silence inside an
utterance, so the end of turn waits from the last frame of real voice (time passed in, frames built here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.config import VadConfig
from agent.media.endpointing import Endpointer, SpeechContinuing, SpeechEnded, SpeechPaused, SpeechStarted, TurnCheck
from agent.media.vad import SILENCE_DBFS, SpeechTail, WebRtcVad, frame_bytes, level_dbfs

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
F = 0.02


def tone(amplitude: float, n: int = 320) -> bytes:
    """A 20 ms frame at 16 kHz whose RMS is `amplitude` (a square wave: RMS = amplitude)."""
    return (np.where(np.arange(n) % 2, amplitude, -amplitude)).astype("<i2").tobytes()


def test_level_is_rms_in_dbfs_with_a_floor_for_digital_silence():
    assert level_dbfs(tone(32767)) == pytest.approx(0.0, abs=0.01)
    assert level_dbfs(tone(1036)) == pytest.approx(-30.0, abs=0.01)
    assert level_dbfs(bytes(640)) == SILENCE_DBFS and level_dbfs(b"") == SILENCE_DBFS


def test_a_voiced_frame_far_below_the_loudest_so_far_is_silence():
    tail = SpeechTail(30)
    assert tail.voiced(tone(10000), True)  # the loudest: -10.3 dBFS
    assert tail.voiced(tone(330), True)  # 29.6 dB below: still voice
    assert not tail.voiced(tone(310), True)  # 30.2 dB below: the fading tail
    assert not tail.voiced(tone(10000), False)  # the VAD's "no" is never turned into voice
    tail.reset()
    assert tail.voiced(tone(310), True)  # a new utterance: its own level is the reference
    assert SpeechTail(0).voiced(tone(1), True)  # 0: off


def cfg(**kw: object) -> VadConfig:
    return VadConfig(**{"end_silence_ms": 900, "smart_turn": False, "barge_in_ms": 0, "speculative_ms": 0,
                        "tail_drop_db": 30.0, **kw})


def push(ep: Endpointer, frames: list[tuple[bytes, bool]]) -> list[tuple[int, object]]:
    out = []
    for i, (frame, voiced) in enumerate(frames):
        out.extend((i, e) for e in ep.push(frame, voiced, i * F))
    return out


LOUD, FADING, QUIET = (tone(8000), True), (tone(100), True), (bytes(640), False)


def test_the_end_of_turn_silence_counts_from_the_last_loud_frame():
    # 30 loud frames, then 6 frames (120 ms) the VAD still calls speech but 38 dB down, then silence.
    frames = [LOUD] * 30 + [FADING] * 6 + [QUIET] * 50
    events = push(Endpointer(cfg()), frames)
    [check] = [(i, e) for i, e in events if isinstance(e, TurnCheck)][:1]
    assert check[0] == 41 and check[1].end == pytest.approx(30 * F)  # 240 ms after frame 29 ended
    # No transcript: the fallback waits for 900 ms of silence as the VAD hears it, after the fading frames.
    [(_, ended)] = [(i, e) for i, e in events if isinstance(e, SpeechEnded)]
    assert ended.end == pytest.approx(30 * F) and ended.decided_at == pytest.approx(36 * F + 0.9)
    assert ended.eot.reason == "silence" and ended.eot.silence_ms == 1020
    # The fading frames still count as voice for the utterance's length (barge-in confirmation, pauses).
    [(_, paused)] = [(i, e) for i, e in events if isinstance(e, SpeechPaused)]
    assert paused.voiced_ms == 36 * 20
    # Off: the same audio waits out the tail first.
    events = push(Endpointer(cfg(tail_drop_db=0)), frames)
    [ended] = [e for _, e in events if isinstance(e, SpeechEnded)]
    assert ended.end == pytest.approx(36 * F)


def test_onset_is_the_vad_s_alone_and_a_fading_tail_never_confirms_a_barge_in():
    # A quiet start and a loud word: the candidate starts on the first quiet voiced frame, as before.
    frames = [QUIET] * 5 + [FADING] * 3 + [LOUD] * 30 + [QUIET] * 60
    events = push(Endpointer(cfg()), frames)
    started = [e for _, e in events if isinstance(e, SpeechStarted)]
    assert started and started[0].at == pytest.approx(5 * F)
    # A backchannel: 340 ms of voice and a 160 ms tail is 500 ms for the VAD, but not 400 ms of voice.
    frames = [LOUD] * 17 + [FADING] * 8 + [QUIET] * 60
    events = push(Endpointer(cfg(barge_in_confirm_ms=400)), frames)
    assert not [e for _, e in events if isinstance(e, SpeechContinuing)]
    [(_, paused)] = [(i, e) for i, e in events if isinstance(e, SpeechPaused)]
    assert paused.voiced_ms == 500  # what the VAD heard, for the controller's resume rule
    # Real speech: confirmed on its 20th loud frame, fading frames in between not counted.
    frames = [LOUD] * 10 + [FADING] * 3 + [LOUD] * 20 + [QUIET] * 60
    events = push(Endpointer(cfg(barge_in_confirm_ms=400)), frames)
    [(i, continuing)] = [(i, e) for i, e in events if isinstance(e, SpeechContinuing)]
    assert i == 22 and continuing.voiced_ms == 460 and continuing.at == pytest.approx(23 * F)


def test_a_loud_word_after_a_fading_one_continues_the_utterance():
    frames = [LOUD] * 20 + [FADING] * 8 + [LOUD] * 20 + [QUIET] * 60
    events = push(Endpointer(cfg()), frames)
    ended = [e for _, e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and ended[0].end == pytest.approx(48 * F)


@pytest.mark.speech
def test_on_the_phone_band_the_speech_end_is_near_where_the_voice_falls_below_minus_40_dbfs():
    import soundfile as sf

    from agent.ops.bench.mulaw import telephone_band

    clip = SPEECH_DIR / "ko/zeroth/104_003_0352.flac"
    if not clip.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    audio, rate = sf.read(clip, dtype="int16")
    source = np.concatenate([audio, np.zeros(rate, np.int16)])
    n = rate // 50
    loud = [i for i in range(0, len(source) - n, n) if level_dbfs(source[i:i + n].tobytes()) > -40]
    source_end = (loud[-1] + n) / rate
    phone = telephone_band(source, rate, 8000).tobytes()

    def speech_end(drop_db: float) -> float:
        ep, vad, size = Endpointer(cfg(tail_drop_db=drop_db)), WebRtcVad(2), frame_bytes(8000)
        ends = []
        for j in range(0, len(phone) - size + 1, size):
            frame = phone[j:j + size]
            ends += [e.end for e in ep.push(frame, vad.is_speech(frame, 8000), j / 2 / 8000)
                     if isinstance(e, SpeechEnded)]
        return ends[-1]

    assert abs(speech_end(30) - source_end) <= 0.04
    assert speech_end(0) - source_end >= 0.08  # webrtcvad's hangover alone


def test_a_sentence_final_transcript_ends_240_ms_after_the_real_voice_even_over_a_fading_tail():
    from agent.media.turn_end import TurnSignals

    ep = Endpointer(cfg())
    events = push(ep, [LOUD] * 30 + [FADING] * 6 + [QUIET] * 6)  # the check comes at frame 41
    check = [e for _, e in events if isinstance(e, TurnCheck)][-1]
    [ended] = ep.set_signals(check.utterance, TurnSignals(text="배송 조회해 주세요"), 42 * F)
    assert ended.eot.reason == "sentence_end" and ended.eos_wait_ms == 240 and ended.end == pytest.approx(30 * F)


def test_the_fallback_counts_the_silence_the_vad_hears():
    from agent.config import VadConfig as Cfg
    from agent.media.turn_end import TurnEndPolicy, TurnSignals

    policy = TurnEndPolicy(Cfg(end_silence_ms=900, smart_turn=False))
    open_text = TurnSignals(text="주문 번호 는")
    assert policy.decide(1000, open_text, vad_silence_ms=880) is None
    end = policy.decide(1020, open_text, vad_silence_ms=900)
    assert end is not None and end.reason == "silence" and end.silence_ms == 1020
    assert policy.decide(900, open_text).reason == "silence"  # one count: the same silence for both
