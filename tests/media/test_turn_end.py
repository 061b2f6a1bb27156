"""Korean sentence-ending check and the end-of-turn policy (pure: text and milliseconds of silence in)."""

from __future__ import annotations

import pytest

from agent.config import VadConfig
from agent.media.korean_endings import sentence_end
from agent.media.turn_end import TurnEndPolicy, TurnSignals

# (transcript so far, does it end a sentence?) — True: final ending; False: the speaker goes on; None: unknown.
ENDINGS = [
    # polite and formal finals
    ("배송 조회해 주세요", True),
    ("주문을 취소하고 싶어요", True),
    ("네 알겠습니다", True),
    ("언제 도착합니까", True),
    ("그거 제 주문이에요", True),
    ("환불 됐네요", True),
    ("내일 오시죠", True),
    ("카드로 결제했는데요", True),
    ("그리고요", True),
    ("주소 바꾸려고요", True),
    # plain and casual finals, with Vosk's split-off endings
    ("기흥 옆으로 걸어갔 다", True),
    ("공사 를 시작했다", True),
    ("언제 와", False),  # casual 와 "come" reads as the particle 와: waiting is the safe mistake
    ("이거 얼마 야", True),
    ("뭐 먹을까", True),
    ("왜 안 오냐", True),
    ("벌써 왔구나", True),
    ("그런 성품 이 어딨 나", True),
    ("벌써 했나", True),
    ("누가 이기는가", True),
    ("사과 나", False),
    # short complete answers
    ("네", True),
    ("예", True),
    ("아니요", True),
    ("맞아", True),
    # connective endings
    ("빚을 내서 하길래", False),
    ("그렇게 말하기에", False),
    ("주문을 했는데", False),
    ("배송이 늦어서", False),
    ("환불 받으면", False),
    ("좋지만", False),
    ("주소를 바꾸고", False),
    ("시간이 없으니까", False),
    ("확인하려고", False),
    ("위촉 되면서", False),
    ("내일 까지 해야", False),
    # particles, written together or apart
    ("제 주문 은", False),
    ("택배 가", False),
    ("주문번호를", False),
    ("김 전 장관 의", False),
    ("서울 에서", False),
    ("저 도", False),
    ("친구 랑", False),
    ("어제 보다", False),
    ("사 월 에", False),
    # fillers and joining words
    ("음", False),
    ("그러니까", False),
    ("그리고", False),
    ("주문 번호 가 어", False),
    # numbers being read out
    ("공일공 일이삼사", False),
    ("전화번호 는 010 1234", False),
    ("카드 번호 5", False),
    # nothing to go on
    ("", None),
    ("동료", None),
    ("필요", None),
    ("KT", None),
    ("그렇지", True),
    ("했어", None),
]


@pytest.mark.parametrize(("text", "expected"), ENDINGS)
def test_korean_sentence_endings(text, expected):
    assert sentence_end(text) is expected


def test_the_ending_table_is_broad():
    assert len(ENDINGS) >= 40
    assert {e for _, e in ENDINGS} == {True, False, None}


def policy(**kw: object) -> TurnEndPolicy:
    return TurnEndPolicy(VadConfig(**{"end_silence_ms": 900, "sentence_end_ms": 240, "audio_model_ms": 500,
                                      "smart_turn_threshold": 0.98, "smart_turn_veto": 0.5, **kw}))


def test_sentence_end_ends_after_the_short_silence_only():
    p, s = policy(), TurnSignals(text="배송 조회해 주세요", smart_turn=0.93)
    assert p.check_points_ms() == (240, 500) and p.needs_audio_model(s, 240)
    assert p.decide(220, s) is None
    end = p.decide(240, s)
    assert end is not None and end.as_dict() == {"reason": "sentence_end", "silence_ms": 240,
                                                  "sentence_end": True, "smart_turn": 0.93}


def test_an_open_transcript_waits_for_the_fallback_whatever_the_audio_model_says():
    p, s = policy(), TurnSignals(text="주문 번호 는", smart_turn=0.999)
    assert not p.needs_audio_model(s, 500)
    assert [p.decide(ms, s) for ms in (240, 500, 880)] == [None, None, None]
    assert p.decide(900, s).reason == "silence"


def test_a_low_audio_score_vetoes_the_fast_path():
    p = policy()
    assert p.decide(240, TurnSignals(text="네 알겠습니다", smart_turn=0.3)) is None
    assert p.decide(900, TurnSignals(text="네 알겠습니다", smart_turn=0.3)).reason == "silence"


def test_the_audio_model_alone_needs_a_calibrated_high_score_and_more_silence():
    p = policy()
    unknown = TurnSignals(text="김 전 장관", smart_turn=0.97)  # a typical mid-sentence score on Korean
    assert not p.needs_audio_model(unknown, 240) and p.needs_audio_model(unknown, 500)
    assert p.decide(880, unknown) is None
    sure = TurnSignals(text="김 전 장관", smart_turn=0.99)
    assert p.decide(480, sure) is None and p.decide(500, sure).reason == "audio_model"
    assert p.decide(500, TurnSignals(smart_turn=0.99)).reason == "audio_model"  # no transcript at all


def test_smart_turn_off_ignores_scores_and_no_signals_means_fallback():
    p = policy(smart_turn=False)
    assert not p.needs_audio_model(TurnSignals(text="네"), 240)
    assert p.decide(600, TurnSignals(text="동료", smart_turn=0.999)) is None
    assert p.decide(240, TurnSignals(text="네", smart_turn=0.01)).reason == "sentence_end"
    end = p.decide(900, TurnSignals())
    assert (end.reason, end.sentence_end, end.smart_turn) == ("silence", None, None)
    assert p.forced(60, TurnSignals(text="네")).reason == "forced"


def test_the_audio_model_runs_only_where_it_can_matter():
    assert policy().may_use_audio_model(240)
    no_veto = policy(smart_turn_veto=0.0)
    assert not no_veto.may_use_audio_model(240) and no_veto.may_use_audio_model(500)
    assert not no_veto.needs_audio_model(TurnSignals(text="네"), 240)
    never = policy(smart_turn_veto=0.0, smart_turn_threshold=1.01)
    assert not never.may_use_audio_model(500) and never.decide(880, TurnSignals(smart_turn=1.0)) is None


def test_a_closed_reading_that_ends_on_the_same_last_word_ends_the_turn_at_the_audio_model_check():
    # The phone-band partial misread the stem before the split-off question ending (104_003_0437 at 8 kHz).
    p = policy()
    s = TurnSignals(text="내게 하는 홍콩 의 어린 나", closed="내게 하는 한컴 이 어딨 나", smart_turn=0.91)
    assert s.sentence_end is False and s.closed_agrees
    assert p.wants_closed(TurnSignals(text=s.text), 500) and not p.wants_closed(TurnSignals(text=s.text), 240)
    assert p.needs_audio_model(s, 500) and not p.needs_audio_model(s, 240)
    assert p.decide(480, s) is None
    end = p.decide(500, s)
    assert end.as_dict() == {"reason": "sentence_end", "silence_ms": 500, "sentence_end": False,
                             "smart_turn": 0.91, "closed": True}
    assert p.decide(500, TurnSignals(text=s.text, closed=s.closed, smart_turn=0.4)) is None  # vetoed
    assert p.decide(500, TurnSignals(text=s.text, closed=s.closed, smart_turn=0.5)).closed  # at the veto: not


@pytest.mark.parametrize("text, closed", [
    ("체납 아크 및 아파트", "체납 아크 및 아빠 다"),  # a "다" the end-of-sentence weight wrote after a noun
    ("의혹에 대한 입담", "의혹에 대한 있다"),
    ("어린 나", "어린 나 는"),  # the closed reading goes on
    ("어린 나", ""),
    ("", "어딨 나"),
])
def test_a_closed_reading_that_disagrees_on_the_last_word_decides_nothing(text, closed):
    s = TurnSignals(text=text, closed=closed, smart_turn=0.9)  # above the veto, below the audio model's own bar
    assert not s.closed_agrees
    assert policy().decide(880, s) is None


def test_the_closed_reading_is_asked_only_where_it_can_change_the_turn():
    p = policy()
    assert not p.wants_closed(TurnSignals(text="배송 조회해 주세요"), 500)  # already ends a sentence
    assert not p.wants_closed(TurnSignals(text=""), 500) and not p.wants_closed(TurnSignals(), 500)
    assert p.wants_closed(TurnSignals(text="김 전 장관"), 500)
    off = policy(closed_check=False)
    assert not off.wants_closed(TurnSignals(text="김 전 장관"), 500)


def test_the_fallback_counts_the_silence_the_vad_hears_where_it_is_given():
    p, open_text = policy(), TurnSignals(text="주문 번호 는")
    assert p.decide(1000, open_text, vad_silence_ms=880) is None  # a word's fading tail still voiced
    assert p.decide(700, open_text, vad_silence_ms=900).reason == "silence"
    assert p.decide(900, open_text).reason == "silence"  # no separate count: the silence itself
