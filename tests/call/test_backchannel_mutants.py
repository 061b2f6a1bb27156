"""Backchannels at their edge: up to three acknowledgement words are "go on"; a fourth makes it speech."""

from agent.call.turns.backchannel import is_backchannel, says_something, words


def test_three_acknowledgements_are_a_backchannel_four_are_not():
    assert is_backchannel("네 네 네") and is_backchannel("아 네, 알겠습니다")
    assert not is_backchannel("네 네 네 네") and says_something("네 네 네 네")
    assert is_backchannel("네 네", max_words=2) and not is_backchannel("네 네 네", max_words=2)


def test_words_split_on_spaces_and_punctuation_only():
    assert words("  네...예~ 음…  아-하 ") == ["네", "예", "음", "아", "하"]
    assert words("주소를,바꿔요!") == ["주소를", "바꿔요"]
    assert words("") == [] and words(" . ") == []
