"""The sentiment score and trend with numbers worked out by hand from the documented weights: a term, an
intensifier just before it, a negation after it or 안/못 before a positive, "!!" runs, clipping, and the
trend that decides a transfer."""

import pytest

from agent.dialog import sentiment as s


@pytest.mark.parametrize("text, expected", [
    ("최악이에요", -0.8),
    ("짜증나요", -0.5),
    ("배송이 늦어요", -0.2),
    ("감사합니다", 0.4),
    ("THANK you", 0.4),                      # lower-cased first
    ("정말 감사합니다", 0.6),                 # an intensifier just before: x1.5
    ("정말로 많이 감사합니다", 0.4),          # more than six characters before: no longer counts
    ("너무    짜증나요", -0.75),              # runs of spaces are one space
    ("불만 없어요", 0.25),                    # negated right after: half the weight, sign turned
    ("화가 안 나요", 0.25),
    ("안 좋아요", -0.2),                      # a positive with 안 before it
    ("못 만족해요", -0.2),
    ("불친절해요", -0.5),                     # "친절" inside "불친절" does not count
    ("불만족이에요", -0.5),                   # "만족" inside "불만족" does not count; "불만" does
    ("감사 감사", 0.8),                       # every occurrence counts
    ("뭐예요!!", -0.1), ("왜요?? 네!!", -0.2), ("네!", 0.0),
    ("최악 최악 최악", -1.0),                  # clipped
    ("감사 감사 감사 고맙 친절", 1.0),
    ("", 0.0),
])
def test_score_by_hand(text, expected):
    assert s.score(text) == pytest.approx(expected)


def test_negation_must_follow_closely():
    assert s.score("불만 그런 건 전혀 없어요") == pytest.approx(-0.5)  # "없" too far after the term
    assert s.score("불만은 없어요") == pytest.approx(0.25)


def test_an_intensifier_and_a_negation_the_negation_wins():
    assert s.score("정말 불만 없어요") == pytest.approx(0.25)


def test_trend_is_an_exponential_mean_with_the_newest_turn_weighted_0_6():
    assert s.trend([]) == 0.0
    assert s.trend([-1.0]) == pytest.approx(-0.6)
    assert s.trend([-1.0, -1.0]) == pytest.approx(-0.84)
    assert s.trend([1.0, -1.0]) == pytest.approx(-0.36)
    assert s.trend([-1.0], alpha=0.5) == pytest.approx(-0.5)


def test_sustained_needs_two_negative_turns_and_the_trend_at_the_threshold():
    assert not s.sustained_negative([-1.0], -0.5)             # one turn never transfers
    assert s.sustained_negative([-1.0, -1.0], -0.84 + 1e-9)    # trend -0.84 at the threshold
    assert not s.sustained_negative([-1.0, -1.0], -0.85)
    assert not s.sustained_negative([-1.0, 0.0, -1.0], -0.1)  # the last two are not both negative
    assert not s.sustained_negative([-1.0, -1.0, 0.4], -0.1)
    assert s.sustained_negative([-1.0, -1.0, -1.0], -0.5, turns=3)
    assert not s.sustained_negative([-1.0, -1.0], -0.5, turns=3)
    assert s.sustained_negative([-1.0, -1.0], -0.75, alpha=0.5)  # trend -0.75 with alpha 0.5
    assert not s.sustained_negative([-1.0, -1.0], -0.8, alpha=0.5)


def test_edges_that_hand_picked_numbers_reveal():
    assert s.score("너무       짜증나요") == pytest.approx(-0.75)  # seven spaces are one: the intensifier counts
    assert s.score("늦어 늦어 늦어") == pytest.approx(-0.6)         # the middle occurrence counts too
    assert s.score("불만은 전혀없어요") == pytest.approx(0.25)     # the negation four characters on
    assert s.score("감사해요 불") == pytest.approx(0.4)            # "불" at the very end is not before the term
    assert s.trend([-0.5]) == pytest.approx(-0.3) and s.trend([-0.5, 0.5]) == pytest.approx(0.18)
