"""Which language the caller speaks, Korean or English, from the transcript; Korean is the default.

`lingua-language-detector`, restricted to the two languages, reads the text; a short turn ("ok", "agent",
"네") is never enough to change the call's language, so a Korean caller who says one English word keeps
Korean, and an English caller is recognised from the first turn with a few English words.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

KOREAN = "ko"
ENGLISH = "en"
LANGUAGES = (KOREAN, ENGLISH)
FIRST_TURN_WORDS = 2  # English words that make the first turn English ("hello there", "my order")
SWITCH_WORDS = 3  # English words that switch a Korean call to English later on
BACK_TO_KOREAN_SYLLABLES = 4  # Hangul syllables that switch an English call back to Korean
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CODES = {Language.KOREAN: KOREAN, Language.ENGLISH: ENGLISH}

_detector: LanguageDetector | None = None
_lock = threading.Lock()


def _get_detector() -> LanguageDetector:
    global _detector
    with _lock:
        if _detector is None:
            _detector = LanguageDetectorBuilder.from_languages(Language.KOREAN, Language.ENGLISH).build()
        return _detector


def detect(text: str) -> str | None:
    """"ko", "en", or None when the text has no letters to judge by (digits, "음", silence)."""
    if not _HANGUL.search(text) and not _LATIN_WORD.search(text):
        return None
    found = _get_detector().detect_language_of(text)
    return _CODES.get(found) if found is not None else None


def english_words(text: str) -> int:
    return len(_LATIN_WORD.findall(text))


def hangul_syllables(text: str) -> int:
    return len(_HANGUL.findall(text))


@dataclass
class CallLanguage:
    """The language of one call: decided on the first caller turn that has words, and switched later only by
    a turn long enough to be sure. `observe` returns the language to answer this turn in."""

    current: str = KOREAN
    decided: bool = False

    def observe(self, text: str) -> str:
        found = detect(text)
        if found is None:
            return self.current
        if not self.decided:
            self.decided = True
            if found == ENGLISH and english_words(text) >= FIRST_TURN_WORDS:
                self.current = ENGLISH
            return self.current
        if found == ENGLISH and self.current == KOREAN and english_words(text) >= SWITCH_WORDS:
            self.current = ENGLISH
        elif found == KOREAN and self.current == ENGLISH and hangul_syllables(text) >= BACK_TO_KOREAN_SYLLABLES:
            self.current = KOREAN
        return self.current


def of_reply(text: str) -> str:
    """The language of a reply the agent is about to say, by its script: a Korean voice reads Hangul, an
    English voice reads a sentence with Latin words and no Hangul."""
    return ENGLISH if not _HANGUL.search(text) and _LATIN_WORD.search(text) else KOREAN
