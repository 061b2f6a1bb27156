"""CER/WER helpers that the Vosk test and the benchmarks score with."""

from __future__ import annotations

from agent.ops.textmetrics import cer, levenshtein, normalise_chars, normalise_words, rate, wer


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "") == 3
    assert levenshtein(["a", "b"], ["a", "b"]) == 0


def test_cer_ignores_spacing_punctuation_and_lexicon_brackets():
    ref = "지난해 삼 월 김 전 장관의 동료 인"
    assert cer(ref, "지난해삼월 김전 장관의 동료인.") == (0, len(normalise_chars(ref)))
    assert cer("동료 인", "종류 인") == (2, 3)
    assert normalise_chars("[3] 월, (천)!") == "3월천"


def test_wer_and_corpus_rate():
    assert wer("Hello, world!", "hello word") == (1, 2)
    assert normalise_words("A  b\tC.") == ["a", "b", "c"]
    assert rate([(1, 10), (3, 30)]) == 0.1
    assert rate([]) == 0.0
