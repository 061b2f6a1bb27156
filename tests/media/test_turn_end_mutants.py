"""The end-of-turn policy's verdicts at its cut-offs, and the `eot` report the controller gets with each final
(why the turn ended, after how much silence, what the transcript and the audio model said). Thresholds are
passed in, so these hold whatever the configured defaults become."""

from __future__ import annotations

from agent.config import VadConfig
from agent.media.turn_end import TurnEnd, TurnEndPolicy, TurnSignals

OPEN_ENDED = "김 전 장관"  # a bare noun: the transcript says nothing either way
FINAL = "배송 조회해 주세요"
CONNECTIVE = "주문을 했는데"


def policy(**kw: object) -> TurnEndPolicy:
    return TurnEndPolicy(VadConfig(**{"end_silence_ms": 900, "sentence_end_ms": 240, "audio_model_ms": 500,
                                      "smart_turn_threshold": 0.98, "smart_turn_veto": 0.5, **kw}))


def test_a_score_exactly_at_a_cut_off_counts():
    p = policy()
    assert p.decide(240, TurnSignals(text=FINAL, smart_turn=0.5)).reason == "sentence_end"  # at the veto
    assert p.decide(500, TurnSignals(text=OPEN_ENDED, smart_turn=0.98)).reason == "audio_model"  # at the threshold


def test_no_check_point_at_or_past_the_fallback():
    # At the fallback the silence alone ends the turn: reading the signals there would only delay it.
    assert policy(sentence_end_ms=900, audio_model_ms=1000).check_points_ms() == ()
    assert policy(audio_model_ms=900).check_points_ms() == (240,)


def test_an_audio_model_end_reports_its_silence_score_and_an_undecided_transcript():
    end = policy().decide(520, TurnSignals(text=OPEN_ENDED, smart_turn=0.99))
    assert end is not None and end.as_dict() == {"reason": "audio_model", "silence_ms": 520, "sentence_end": None,
                                                 "smart_turn": 0.99}


def test_a_silence_end_reports_what_the_signals_said():
    end = policy().decide(900, TurnSignals(text=CONNECTIVE, smart_turn=0.91))
    assert end is not None and end.as_dict() == {"reason": "silence", "silence_ms": 900, "sentence_end": False,
                                                 "smart_turn": 0.91}


def test_a_forced_end_reports_the_signals_and_drops_the_score_when_the_model_is_off():
    signals = TurnSignals(text=FINAL, smart_turn=0.3)
    assert policy().forced(60, signals).as_dict() == {"reason": "forced", "silence_ms": 60, "sentence_end": True,
                                                      "smart_turn": 0.3}
    assert policy(smart_turn=False).forced(60, signals).as_dict() == {
        "reason": "forced", "silence_ms": 60, "sentence_end": True, "smart_turn": None}


def test_the_reported_score_is_rounded_to_three_places_and_may_be_absent():
    assert TurnEnd("sentence_end", 240, True, 0.93456).as_dict()["smart_turn"] == 0.935
    assert TurnEnd("silence", 900, None, None).as_dict() == {"reason": "silence", "silence_ms": 900,
                                                            "sentence_end": None, "smart_turn": None}


def test_a_threshold_of_exactly_one_still_lets_the_audio_model_end_a_turn():
    p = policy(smart_turn_veto=0.0, smart_turn_threshold=1.0)
    assert p.may_use_audio_model(500) and p.needs_audio_model(TurnSignals(text=OPEN_ENDED), 500)
    assert p.decide(500, TurnSignals(text=OPEN_ENDED, smart_turn=1.0)).reason == "audio_model"
    never = policy(smart_turn_veto=0.0, smart_turn_threshold=1.01)
    assert not never.needs_audio_model(TurnSignals(text=OPEN_ENDED), 500)
