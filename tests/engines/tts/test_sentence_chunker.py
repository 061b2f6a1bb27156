"""Sentence chunking: Korean sentence ends, protected tokens, length caps, and streaming == whole text."""

from __future__ import annotations

import random
import unicodedata

import pytest

from agent.engines.tts.chunker import SentenceChunker, split_sentences

GREETING = (
    "안녕하세요, 고객센터입니다. 저는 인공지능 상담원이며 통화 내용은 상담 품질을 위해 기록됩니다. "
    "무엇을 도와드릴까요?"
)
LONG = (
    "고객님께서 지난주에 주문하신 상품은 현재 물류센터에서 출고 준비 중인데 택배사 사정으로 배송이 "
    "하루 정도 지연될 수 있으며 도착 예정일은 문자로 다시 안내해 드리겠습니다."
)
MIXED = (
    "네, 확인했습니다! 주문번호 A-2024.05.12-0042 상품의 가격은 12,000원이고 금리는 연 3.5%입니다. "
    "배송 기사님은 10:30에 방문 예정이에요~ 문의는 https://ex.co.kr/o?id=42&v=1.5 또는 "
    "help@ex.co.kr 로 하세요. Mr. Kim 님이 안내해 드립니다.\n1. 배송 조회 2. 반품 접수\n"
    "그럼 좋은 하루 되세요... 감사합니다"
)


def test_korean_sentences_split_at_their_ends() -> None:
    assert split_sentences(GREETING) == [
        "안녕하세요, 고객센터입니다.",
        "저는 인공지능 상담원이며 통화 내용은 상담 품질을 위해 기록됩니다.",
        "무엇을 도와드릴까요?",
    ]


def test_numbers_prices_times_urls_and_abbreviations_stay_whole() -> None:
    assert split_sentences(MIXED) == [
        "네, 확인했습니다!",
        "주문번호 A-2024.05.12-0042 상품의 가격은 12,000원이고 금리는 연 3.5%입니다.",
        "배송 기사님은 10:30에 방문 예정이에요~",
        "문의는 https://ex.co.kr/o?id=42&v=1.5 또는 help@ex.co.kr 로 하세요.",
        "Mr. Kim 님이 안내해 드립니다.",
        "1. 배송 조회 2. 반품 접수",
        "그럼 좋은 하루 되세요...",
        "감사합니다",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Formal and polite endings end a sentence without punctuation.
        ("네 알겠습니다 주문번호를 알려주세요 확인해 드릴게요",
         ["네 알겠습니다", "주문번호를 알려주세요", "확인해 드릴게요"]),
        # The connective -니까 and nouns in -요 (필요) do not.
        ("비가 오니까 우산을 챙기시고 필요 없으시면 두고 가세요",
         ["비가 오니까 우산을 챙기시고 필요 없으시면 두고 가세요"]),
        ("10 ~ 20분 정도 걸립니다. 감사합니다~ 또 오세요",
         ["10 ~ 20분 정도 걸립니다.", "감사합니다~", "또 오세요"]),
        ('그분이 "잠시만요." 라고 하셨어요. 네?! 정말요?',
         ['그분이 "잠시만요."', "라고 하셨어요.", "네?!", "정말요?"]),
        ("e.g. 이런 경우 vs. 저런 경우 U.S. 달러로 결제됩니다.",
         ["e.g. 이런 경우 vs. 저런 경우 U.S. 달러로 결제됩니다."]),
        ("첫째 줄\r\n둘째 줄\n\n  셋째   줄", ["첫째 줄", "둘째 줄", "셋째 줄"]),
        ("  \n\t ", []),
        # Punctuation on its own says nothing: dropped.
        ("네 . . . ! 감사합니다 .", ["네 .", "감사합니다"]),
    ],
)
def test_sentence_end_rules(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_sentence_capped_at_connective_endings() -> None:
    assert split_sentences(LONG, 40) == [
        "고객님께서 지난주에 주문하신 상품은 현재 물류센터에서 출고 준비 중인데",
        "택배사 사정으로 배송이 하루 정도 지연될 수 있으며",
        "도착 예정일은 문자로 다시 안내해 드리겠습니다.",
    ]
    for limit in (12, 20, 33, 60):
        chunks = split_sentences(LONG, limit)
        assert all(len(c) <= limit for c in chunks), (limit, chunks)
        assert " ".join(chunks) == LONG  # nothing lost, no word cut


def test_cap_prefers_comma_and_never_ends_on_a_bare_number() -> None:
    text = "주문하신 상품 세 가지의 총 금액은 12,000 원이며, 배송비 3,000 원은 별도로 청구됩니다"
    chunks = split_sentences(text, 32)
    assert chunks[0] == "주문하신 상품 세 가지의 총 금액은 12,000 원이며,"
    assert not any(c[-1].isdigit() for c in chunks)
    assert " ".join(chunks) == text


def test_a_word_longer_than_the_limit_is_never_cut() -> None:
    url = "https://shop.example.co.kr/orders/2024/05/12/0042?session=abcdefghijklmnop"
    chunks = split_sentences(f"링크는 {url} 입니다", 20)
    assert url in chunks
    assert " ".join(chunks) == f"링크는 {url} 입니다"


def test_first_chunk_is_capped_more_tightly() -> None:
    plain = split_sentences(LONG, 60)
    first = split_sentences(LONG, 60, first_max_chars=20)
    assert len(plain[0]) > 20
    assert len(first[0]) <= 20 and first[0] == "고객님께서 지난주에 주문하신 상품은"
    assert all(len(c) <= 60 for c in first[1:])
    assert " ".join(first) == LONG
    # A short first sentence is left alone; the limit applies to the first chunk only.
    assert split_sentences("네. " + LONG, 60, first_max_chars=20)[:2] == ["네.", plain[0]]


def test_feed_emits_a_chunk_as_soon_as_the_sentence_end_is_seen() -> None:
    c = SentenceChunker()
    assert c.feed("안녕하세요") == []
    assert c.feed(".") == []  # "3." could still become "3.5"
    assert c.feed(" 고객") == ["안녕하세요."]
    assert c.feed("님 주문번호 12") == []
    assert c.feed(".5 확인했습니다 ") == ["고객님 주문번호 12.5 확인했습니다"]
    assert c.flush() == []


def test_flush_returns_the_rest_and_resets() -> None:
    c = SentenceChunker(60, first_max_chars=20)
    fed = c.feed(LONG)
    assert fed[0] == "고객님께서 지난주에 주문하신 상품은"
    rest = c.flush()
    assert rest == ["도착 예정일은 문자로 다시 안내해 드리겠습니다."]  # nothing followed its "."
    assert fed + rest == split_sentences(LONG, 60, first_max_chars=20)
    assert c.feed(LONG)[0] == "고객님께서 지난주에 주문하신 상품은"  # the first-chunk cap applies again


def _random_pieces(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, min(len(text) - 1, 40))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _stream(pieces: list[str], max_chars: int, first: int | None) -> list[str]:
    c = SentenceChunker(max_chars, first)
    out: list[str] = []
    for p in pieces:
        out += c.feed(p)
    return out + c.flush()


@pytest.mark.parametrize(("max_chars", "first"), [(60, None), (60, 20), (25, 10), (12, None), (8, 3)])
def test_random_token_splits_give_the_whole_text_chunks(max_chars: int, first: int | None) -> None:
    rng = random.Random(max_chars * 100 + (first or 0))
    for text in (GREETING, LONG, MIXED, LONG + "\n" + MIXED + " " + GREETING):
        expected = split_sentences(text, max_chars, first_max_chars=first)
        for _ in range(150):
            assert _stream(_random_pieces(text, rng), max_chars, first) == expected


def test_decomposed_jamo_split_mid_syllable_compose_back() -> None:
    nfd = unicodedata.normalize("NFD", GREETING + " " + LONG)
    expected = split_sentences(GREETING + " " + LONG, 30, first_max_chars=12)
    rng = random.Random(7)
    for _ in range(100):
        assert _stream(_random_pieces(nfd, rng), 30, 12) == expected


def test_random_texts_respect_limits_and_keep_every_word() -> None:
    rng = random.Random(3)
    words = ["고객님", "주문하신", "상품은", "12,000원", "3.5%", "10:30", "확인했습니다.", "그리고", "배송이",
             "지연되는데", "죄송합니다!", "하고", "Mr.", "www.example.com", "네,", "1.", "정말요?", "~", "\n"]
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        limit = rng.randint(5, 40)
        chunks = split_sentences(text, limit)
        assert all(len(c) <= limit or " " not in c for c in chunks), (text, limit, chunks)
        assert _spoken_words(" ".join(chunks)) == _spoken_words(text)
        assert chunks == _stream(_random_pieces(text, rng), limit, None)


def _spoken_words(text: str) -> list[str]:
    return [w for w in text.split() if any(ch.isalnum() for ch in w)]


@pytest.mark.parametrize("bad", [0, -5, True, 2.5])
def test_bad_limits_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("안녕하세요.", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_max_chars"):
        SentenceChunker(60, bad)  # type: ignore[arg-type]
