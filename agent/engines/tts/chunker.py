"""Korean-aware sentence chunking for TTS, so the first chunk can be synthesized and played early.

Pure text in, text out. `SentenceChunker.feed` emits a chunk only once later text cannot change it, so any
split of a token stream yields exactly the chunks that `split_sentences` yields for the whole text.
"""

from __future__ import annotations

import re
import unicodedata

_TERMINALS = frozenset(".?!。…~？！～．")
_TILDES = frozenset("~～")
_CLOSERS = frozenset("\"')]}”’」』》〉】")
_OPENERS = "\"'([{“‘「『《〈【"
_NEWLINES = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
_COMMAS = frozenset(",，、;；:：")

# Tokens that a single "." follows without ending the sentence (lowercase, dot removed).
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "no", "nos", "vs", "etc", "approx", "dept",
    "inc", "co", "ltd", "corp", "tel", "fax", "ext", "vol", "fig", "ref", "cf", "ca", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
})
# Initials and dotted abbreviations: "J.", "U.S.", "e.g.", "a.m.".
_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")
# "1. 배송 조회": a list number, not the end of a sentence.
_LIST_NUMBER = re.compile(r"\d{1,3}")

# Polite sentence-final endings that end a sentence even without punctuation ("감사해요 다음").
# "요" alone is not enough: 필요, 중요 and 주요 are nouns.
_POLITE_ENDINGS = (
    "세요", "에요", "예요", "네요", "까요", "게요", "군요", "어요", "아요", "해요", "지요", "죠",
)
# Connective endings where a long sentence may be broken ("…했지만 ", "…하고 "); -ㄴ데 is matched apart.
_CONNECTIVES = (
    "지만", "면서", "으며", "어서", "아서", "해서", "니까", "으니", "므로", "거나", "든지", "도록", "려고",
    "다가", "던데", "으면", "하면", "되면", "시면", "다면", "려면", "고", "며",
)
# Common nouns that end like the connective -고 ("출고 준비"): a plain space, not a clause break.
_NOUNS_IN_GO = (
    "출고", "입고", "재고", "광고", "창고", "참고", "신고", "사고", "최고", "경고", "공고", "원고",
)
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_JONG_NIEUN = 4  # final consonant ㄴ: 는데, 인데, 한데
_JONG_BIEUP = 17  # final consonant ㅂ: 합니다, 습니다, 입니까


def _is_hangul(ch: str) -> bool:
    return _HANGUL_FIRST <= ord(ch) <= _HANGUL_LAST


def _final_consonant(ch: str) -> int:
    return (ord(ch) - _HANGUL_FIRST) % 28 if _is_hangul(ch) else -1


def _word_before(buf: str, end: int) -> str:
    start = max(buf.rfind(" ", 0, end), buf.rfind("\n", 0, end)) + 1
    return buf[start:end]


def _ends_korean_sentence(word: str) -> bool:
    """True for a word ending in a sentence-final form: 합니다, 입니까, 주세요, 그렇죠."""
    if len(word) < 2 or not _is_hangul(word[-1]) or not _is_hangul(word[-2]):
        return False
    if len(word) >= 3 and word[-2:] in ("니다", "니까") and _is_hangul(word[-3]):
        # Formal -ㅂ니다/-ㅂ니까 only; the connective -니까 ("오니까 ") does not end a sentence.
        return _final_consonant(word[-3]) == _JONG_BIEUP
    return word.endswith(_POLITE_ENDINGS)


def _ends_sentence(buf: str, i: int) -> bool:
    """Whether the punctuation run (plus closing quotes) ending at buf[i] ends a sentence.

    The caller has checked that whitespace follows buf[i]; "3.5", "10:30" and URLs never get here.
    """
    j = i
    while j >= 0 and buf[j] in _CLOSERS:
        j -= 1
    if j < 0 or buf[j] not in _TERMINALS:
        return False
    k = j
    while k >= 0 and buf[k] in _TERMINALS:
        k -= 1
    run = buf[k + 1 : j + 1]
    before = buf[k] if k >= 0 else ""
    if set(run) <= _TILDES:
        # "10 ~ 20분" and "10~ 20" are ranges; "감사합니다~ " ends a sentence.
        return before not in ("", " ", "\n") and not before.isdigit()
    if run in (".", "．"):
        token = _word_before(buf, k + 1).lstrip(_OPENERS)
        if token.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(token) or _LIST_NUMBER.fullmatch(token):
            return False
    return True


def _break_class(buf: str, j: int) -> int:
    """How good a break the space at buf[j] is: 2 after a comma, 1 after a connective, 0 plain, -1 bad."""
    left = buf[j - 1]
    if left.isdigit():
        return -1  # "12,000 원", "010 1234": the unit or the next digit group follows
    if left in _COMMAS:
        return 2
    return 1 if _ends_connective(_word_before(buf, j)) else 0


def _ends_connective(word: str) -> bool:
    if len(word) < 2 or not _is_hangul(word[-2]):
        return False
    if word[-1] == "데" and _final_consonant(word[-2]) == _JONG_NIEUN:
        return True
    if word.endswith(_NOUNS_IN_GO):
        return False
    return any(len(word) > len(e) and word.endswith(e) for e in _CONNECTIVES)


def _cap(buf: str, limit: int, final: bool) -> tuple[int, int] | None:
    """Cut for a sentence longer than `limit`: the best space within the first `limit` characters."""
    scored = [(_break_class(buf, j), j) for j in range(1, limit + 1) if buf[j] == " "]
    if scored:
        # A break too near the start leaves a stub chunk; prefer ones past 40 % of the limit.
        late = [c for c in scored if c[1] * 5 >= limit * 2 and c[0] >= 0]
        good = [c for c in scored if c[0] >= 0]
        j = (max(late) if late else max(good or scored, key=lambda c: c[1]))[1]
        return j, j + 1
    # One word longer than the limit: never cut inside it, end the chunk at the next space.
    for k in range(limit + 1, len(buf)):
        if buf[k] in " \n":
            return k, k + 1
    return (len(buf), len(buf)) if final else None


def _find_cut(buf: str, limit: int, final: bool) -> tuple[int, int] | None:
    """(end of the first chunk, start of the rest) in `buf`, or None until more text arrives.

    Every decision reads only text that is already present, and a whitespace character's kind (space or
    newline) is read only once a later character has fixed it; that is what keeps streaming stable.
    """
    n = len(buf)
    for i in range(min(n, limit + 1)):
        ch = buf[i]
        if ch == "\n":
            return i, i + 1
        if ch == " ":
            if _ends_korean_sentence(_word_before(buf, i)):
                return i, i + 1
        elif i < limit and i + 1 < n and buf[i + 1] in " \n" and _ends_sentence(buf, i):
            return i + 1, i + 1
    if n <= limit:
        return (n, n) if final else None
    if not final and n < limit + 2:
        return None  # the character after the window decides some breaks
    return _cap(buf, limit, final)


def _speakable(chunk: str) -> bool:
    return any(ch.isalnum() for ch in chunk)


def _check_limit(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class SentenceChunker:
    """Streaming chunker: `feed` LLM text pieces, get speakable chunks as soon as they are final.

    `first_max_chars` caps the very first chunk more tightly so the first audio starts sooner.
    `flush` returns the rest and resets the chunker for the next utterance.
    """

    def __init__(self, max_chars: int = 60, first_max_chars: int | None = None):
        _check_limit("max_chars", max_chars)
        _check_limit("first_max_chars", first_max_chars)
        self.max_chars = max_chars
        self.first_max_chars = min(first_max_chars, max_chars) if first_max_chars else max_chars
        self._buf = ""
        self._emitted = 0

    def feed(self, text_piece: str) -> list[str]:
        if not isinstance(text_piece, str):
            raise TypeError(f"text_piece must be str, got {type(text_piece).__name__}")
        self._append(text_piece)
        return self._extract(final=False)

    def flush(self) -> list[str]:
        self._buf = self._buf.rstrip(" \n")
        chunks = self._extract(final=True)
        self._buf = ""
        self._emitted = 0
        return chunks

    def _append(self, piece: str) -> None:
        out = list(self._buf)
        for ch in piece:
            if not ch.isspace():
                out.append(ch)
            elif not out:
                continue  # leading whitespace: a chunk boundary was here anyway
            elif out[-1] in " \n":
                if ch in _NEWLINES:
                    out[-1] = "\n"  # a run with a newline in it counts as a newline
            else:
                out.append("\n" if ch in _NEWLINES else " ")
        buf = "".join(out)
        # NFC over the whole buffer: decomposed jamo split across pieces still compose into syllables.
        if not buf.isascii() and not unicodedata.is_normalized("NFC", buf):
            buf = unicodedata.normalize("NFC", buf)
        self._buf = buf

    def _extract(self, final: bool) -> list[str]:
        chunks: list[str] = []
        while self._buf:
            limit = self.first_max_chars if self._emitted == 0 else self.max_chars
            cut = _find_cut(self._buf, limit, final)
            if cut is None:
                break
            end, rest = cut
            chunk = self._buf[:end].strip()
            self._buf = self._buf[rest:].lstrip(" \n")
            if _speakable(chunk):  # a lone "." or "!" has nothing to say
                chunks.append(chunk)
                self._emitted += 1
        return chunks


def split_sentences(text: str, max_chars: int = 60, *, first_max_chars: int | None = None) -> list[str]:
    """Splits `text` into speakable chunks of at most `max_chars` (a single longer word stays whole)."""
    chunker = SentenceChunker(max_chars, first_max_chars)
    return chunker.feed(text) + chunker.flush()
