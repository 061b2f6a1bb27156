"""Barge-in decisions at their edges (pure, time passed in): the defaults a controller gets without settings,
the exact confirmation length and pause limit, and a reset that really disarms."""

from agent.call.turns.barge_in import Action, BargeIn, BargeInSettings


def test_without_settings_half_a_second_of_voice_confirms_and_a_pause_lasts_1_2_s():
    b = BargeIn()
    assert b.on_onset(1, 100.0, interruptible_audio=True) is Action.PAUSE
    assert b.on_short_speech(1, 500) is Action.NONE and b.armed
    assert b.on_continuing(1, 420) is Action.BREAK  # the worker's confirmation, whatever its voiced_ms
    b = BargeIn()
    b.on_onset(1, 100.0, interruptible_audio=True)
    assert b.on_short_speech(1, 499) is Action.RESUME
    b = BargeIn(None)
    b.on_onset(1, 100.0, interruptible_audio=True)
    assert b.tick(101.1) is Action.NONE and b.tick(101.2) is Action.RESUME


def test_a_pause_of_exactly_the_limit_resumes():
    b = BargeIn(BargeInSettings(max_pause_s=1.5))
    b.on_onset(1, 10.0, interruptible_audio=True)
    assert b.tick(11.5) is Action.RESUME


def test_speech_that_stops_at_exactly_the_confirmation_length_is_an_interruption():
    b = BargeIn(BargeInSettings(confirm_ms=500))
    b.on_onset(1, 10.0, interruptible_audio=True)
    assert b.on_short_speech(1, 500) is Action.NONE and b.armed
    assert b.on_short_speech(1, 499.9) is Action.RESUME


def test_reset_disarms_so_the_next_onset_pauses_again_and_no_resume_follows():
    b = BargeIn()
    b.on_onset(1, 10.0, interruptible_audio=True)
    b.reset()
    assert not b.armed
    assert b.tick(50.0) is Action.NONE and b.on_final("네") is Action.NONE
    assert b.on_onset(2, 51.0, interruptible_audio=True) is Action.PAUSE


def test_every_break_and_resume_is_counted():
    b = BargeIn()
    for i in range(3):
        b.on_onset(i, float(i), interruptible_audio=True)
        assert b.on_final("잠깐만요 그게 아니고요") is Action.BREAK
    for i in range(2):
        b.on_onset(i, 10.0 + i, interruptible_audio=True)
        assert b.on_final("네") is Action.RESUME
    assert (b.broken, b.resumed) == (3, 2)
