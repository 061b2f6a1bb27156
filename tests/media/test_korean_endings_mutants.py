"""Korean sentence endings at the edges: one-word transcripts, endings Vosk splits off, formal questions and
past-tense questions in short words, and text with no word at all. True ends the turn soon, False waits, None
says nothing (the fallback silence decides)."""

from __future__ import annotations

import pytest

from agent.media.korean_endings import last_word, sentence_end


@pytest.mark.parametrize("text", ["?", "...", "", "  "])
def test_text_without_a_word_says_nothing(text):
    assert last_word(text) == "" and sentence_end(text) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("걸어갔 다", True),  # two tokens, the plain final ending split off
    ("언제 도착합 니까", True),  # a formal question whose 니까 was split off: ㅂ before it
    ("시간 없으 니까", False),  # the same 니까 after a vowel: "because", more is coming
])
def test_an_ending_split_off_by_the_recogniser_is_read_with_its_word(text, expected):
    assert sentence_end(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("합니까", True), ("입니까", True),  # three syllables: the formal question
    ("했나", True), ("있나", True),  # two syllables: a past-tense question, not the particle 나
    ("간다", True), ("먹자", True),  # two syllables ending in a final ending
    ("요", True),  # a lone polite ending still closes the sentence
])
def test_short_words_with_a_final_ending(text, expected):
    assert sentence_end(text) is expected


@pytest.mark.parametrize("text", ["다", "대", "꿈", "A"])
def test_a_lone_syllable_or_letter_says_nothing(text):
    # One syllable is as likely a noun (대 "stand", 꿈 "dream") as an ending: no verdict, the fallback decides.
    assert sentence_end(text) is None


def test_a_latin_letter_before_nikka_is_not_a_final_consonant():
    # "KY니까": the letter before 니까 has no Hangul final consonant, so this is "because", not a question.
    assert sentence_end("택배 KY니까") is False
