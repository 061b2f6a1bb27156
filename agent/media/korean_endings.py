"""Does a Korean transcript end a sentence? A pure check of the last word's ending, for the end of turn.

`sentence_end(text)` is True for final endings (-요, -니다/-니까 after ㅂ, -다, -죠, -네, -까, -냐, …) and short
complete answers (네, 아니요), False where the speaker is clearly mid-sentence (connective endings -고/-서/-면/
-지만/-는데, case particles 은/는/이/가/을/를/에…, fillers, a number being read out), and None where the
ending says nothing either way (a bare noun, an ambiguous -지/-어). Wrong "False" only costs the fallback
silence; wrong "True" cuts the caller off, so anything uncertain is not True.
"""

from __future__ import annotations

import re

_HANGUL_BASE = 0xAC00
_JONG_B = 17  # ㅂ as a final consonant (jongseong index)
_JONG_PAST = (18, 20)  # ㅄ (없-) and ㅆ (있-, 했-): a verb stem, so a following 나 is the question ending


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# Whole last words that complete a turn on their own (answers, agreement).
COMPLETE_WORDS = frozenset(_split(
    "네 예 응 어응 아니요 아니오 아뇨 맞아 그래 좋아 괜찮아 됐어 알겠어 고마워 "
    "그렇지"
))
# Whole last words that mean more is coming: fillers and sentence-joining adverbs.
OPEN_WORDS = frozenset(_split(
    "음 어 아 그 저 에 뭐 이제 그러니까 그래서 그리고 근데 그런데 그러면 혹시 "
    "만약 제가 저는 그게 그거 그러고 또 그냥 좀 막 약간 어떻게 왜냐면 왜냐하면"
))
# Korean number words: a caller reading out digits pauses between groups.
NUMBER_WORDS = frozenset(_split(
    "영 공 일 이 삼 사 오 육 륙 칠 팔 구 십 백 천 만 억 하나 둘 셋 넷 "
    "다섯 여섯 일곱 여덟 아홉 열 스물 서른 마흔 쉰"
))
# Nouns that end in a syllable that is also a final ending: a bare noun says nothing about the turn.
NOUNS = frozenset(_split(
    "필요 중요 수요 바다 여자 남자 의자 모자 이자 과자 피자 부자 시대 세대 침대 "
    "기대 반대 상대 미래 노래 거래 분야 동네 언니 누나 오빠 형 엄마 아빠"
))
# Final endings (where a final and an open ending both match, the longer one wins).
FINAL_SUFFIXES = _split(
    "요 죠 니다 습니까 답니다 랍니다 네 구나 군 는걸 는가 던가 냐 니 래 대 자 야 다 까"
)
# Connective endings and particles (니까 "because" loses to the longer 습니까).
OPEN_SUFFIXES = _split(
    "지만 는데 은데 던데 는지 은지 을지 ㄴ지 니까 으니 려고 려면 으면 도록 다가 "
    "어야 아야 해야 워야 여야 면서 으며 거나 든지 든가 더니 길래 기에 어서 아서 해서 라서 "
    "이라 보다 부터 까지 처럼 같이 에서 에게 한테 께서 으로 이랑 하고 라고 다고 "
    "냐고 자고 라는 다는 이나 고 서 면 며 은 는 이 가 을 를 에 도 랑 와 과 "
    "의 로 만 나 게 러 께"
)

_WORD = re.compile(r"[0-9A-Za-z\uac00-\ud7a3]+")
_DIGITS = re.compile(r"[0-9]")
_SINO_DIGITS = re.compile(r"[영공일이삼사오육칠팔구십백천만억]{2,}")


def _jongseong(syllable: str) -> int:
    code = ord(syllable) - _HANGUL_BASE
    return code % 28 if 0 <= code < 11172 else 0


def _match(word: str, suffixes: tuple[str, ...]) -> int:
    return max((len(x) for x in suffixes if word.endswith(x)), default=0)


def last_word(text: str) -> str:
    """The last run of Hangul, Latin letters or digits (punctuation and brackets dropped)."""
    words = _WORD.findall(text)
    return words[-1] if words else ""


def _ending_word(text: str) -> str:
    """The last word with a split-off ending re-attached: Vosk's Korean model writes morphemes apart
    ("걸어갔 다", "장관 의"), so a last token of one or two syllables is read together with the one before."""
    words = _WORD.findall(text)
    if len(words) >= 2 and len(words[-1]) <= 2 and not _DIGITS.search(words[-2]):
        return words[-2] + words[-1]
    return words[-1] if words else ""


def sentence_end(text: str) -> bool | None:
    """True: the text ends a sentence; False: it clearly goes on; None: the ending does not tell."""
    last = last_word(text)
    if not last:
        return None
    if _DIGITS.search(last) or last in NUMBER_WORDS or _SINO_DIGITS.fullmatch(last):
        return False  # digits being read out: groups come with pauses
    if last in COMPLETE_WORDS:
        return True
    if last in OPEN_WORDS:
        return False
    if last in NOUNS:
        return None
    word = _ending_word(text)
    if not ("\uac00" <= word[-1] <= "\ud7a3"):
        return None  # a Latin word or acronym: no ending to read
    if word.endswith("니까") and len(word) >= 3 and (word.endswith("습니까") or _jongseong(word[-3]) == _JONG_B):
        return True  # 합니까/입니까/습니까: a formal question, not 니까 "because"
    if word.endswith("나") and len(word) >= 2 and _jongseong(word[-2]) in _JONG_PAST:
        return True  # 있나/했나/어딨나: a question, not the particle 나 ("or") after a noun
    if word.endswith("요"):
        return True  # -요 closes polite speech even after a connective (-는데요, -고요)
    # The longest matching ending decides: 구나 (final) over 나 (particle), 해야 (connective) over 야 (final).
    open_len = _match(word, OPEN_SUFFIXES)
    final_len = _match(word, FINAL_SUFFIXES) if len(word) >= 2 else 0
    if open_len or final_len:
        return final_len > open_len
    return None  # a bare noun, or an ambiguous ending (-지, -어: final in casual speech or mid-sentence)
