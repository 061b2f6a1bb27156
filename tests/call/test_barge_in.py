"""Barge-in decisions (pure, time passed in): pause at once, break on real speech, resume on a cough or "네"."""

import pytest

from agent.call.turns.backchannel import is_backchannel, says_something
from agent.call.turns.barge_in import Action, BargeIn, BargeInSettings


def paused(now: float = 10.0) -> BargeIn:
    b = BargeIn(BargeInSettings(confirm_ms=500, max_pause_s=1.2))
    assert b.on_onset(1, now, interruptible_audio=True) is Action.PAUSE
    return b


def test_onset_pauses_only_interruptible_audio_and_only_once():
    b = BargeIn()
    assert b.on_onset(1, 0.0, interruptible_audio=False) is Action.NONE  # greeting / disclosure
    assert b.on_onset(1, 0.0, interruptible_audio=True) is Action.PAUSE
    assert b.on_onset(2, 0.1, interruptible_audio=True) is Action.NONE  # already paused


def test_the_worker_s_continuing_confirms_a_real_interruption():
    b = paused()
    # The worker counts only frames of real voice against its own confirmation length; its voiced_ms (every
    # frame the VAD called speech) is not compared again here.
    assert b.on_continuing(1, 420) is Action.BREAK
    assert not b.armed and b.broken == 1


@pytest.mark.parametrize("burst", ["speech_dropped", "speech_paused"])
def test_a_short_burst_resumes(burst):
    b = paused()
    assert b.on_short_speech(1, 200) is Action.RESUME
    assert b.resumed == 1 and not b.armed


def test_a_pause_after_long_speech_does_not_resume():
    b = paused()
    assert b.on_short_speech(1, 800) is Action.NONE and b.armed


@pytest.mark.parametrize("text,action", [
    ("네", Action.RESUME), ("네 네", Action.RESUME), ("아 네", Action.RESUME), ("음…", Action.RESUME),
    ("", Action.RESUME), ("잠깐만요", Action.BREAK), ("아니요 그게 아니라", Action.BREAK), ("네 근데요", Action.BREAK),
])
def test_the_final_words_decide(text, action):
    assert paused().on_final(text) is action


def test_partial_words_break_but_never_resume():
    b = paused()
    assert b.on_words("네") is Action.NONE and b.armed
    assert b.on_words("주소를 바꾸") is Action.BREAK


def test_a_pause_never_outlasts_its_limit():
    b = paused(now=10.0)
    assert b.tick(11.1) is Action.NONE
    assert b.tick(11.25) is Action.RESUME and not b.armed
    assert b.tick(20.0) is Action.NONE


def test_nothing_happens_when_not_paused():
    b = BargeIn()
    assert b.on_continuing(1, 900) is Action.NONE
    assert b.on_final("잠깐만요") is Action.NONE
    assert b.on_short_speech(1, 100) is Action.NONE


def test_backchannel_vocabulary():
    assert is_backchannel("네.") and is_backchannel("예 예") and is_backchannel("응")
    assert not is_backchannel("네 그런데 환불은요") and not is_backchannel("") and not is_backchannel("아니요")
    assert says_something("아니요") and not says_something("네") and not says_something("")


def test_short_sounds_and_the_phone_band_spellings_of_ne():
    from agent.call.turns.backchannel import is_short_sound

    assert is_backchannel("례") and is_backchannel("내")  # 네 as the recogniser writes it on 8 kHz audio
    assert is_short_sound("켁") and is_short_sound("어 음") and not is_short_sound("아니요")
