"""English callers: the language is read from the first turn, the scripted dialog answers in English, the TTS
switches to an English voice; Korean stays the default and one English word does not switch."""

from __future__ import annotations

from pathlib import Path

import pytest
from dialog_support import scripted

from agent.dialog import escalation, language
from agent.dialog.policy import CallInfo, EndCall, Escalate, Say
from agent.dialog.scripted import ENGLISH_HANDOFF, ENGLISH_HELLO
from agent.engines.tts.fake import FakeTts
from agent.engines.tts.speaker import Speaker
from agent.engines.tts.spool import Spool


@pytest.mark.parametrize(("text", "lang"), [
    ("Hello, I want to check my order", "en"), ("배송 언제 와요?", "ko"), ("my order 123456 배송 언제 와요", "ko"),
    ("123456", None), ("", None), ("음", "ko"), ("Where is my package?", "en"),
])
def test_detect(text: str, lang: str | None) -> None:
    assert language.detect(text) == lang


def test_first_turn_decides_and_short_turns_never_switch() -> None:
    call = language.CallLanguage()
    assert call.observe("123456") == "ko" and not call.decided  # digits say nothing
    assert call.observe("ok") == "ko" and call.decided  # one English word: still a Korean call
    assert call.observe("agent please") == "ko"  # two words later on: not enough to switch
    assert call.observe("Sorry, can you speak English please?") == "en"  # a full English sentence switches
    assert call.observe("네") == "en"  # one syllable does not switch back
    assert call.observe("아 한국어로 해 주세요") == "ko"


def test_first_turn_in_english() -> None:
    call = language.CallLanguage()
    assert call.observe("Hi there") == "en"


def test_reply_language_by_script() -> None:
    assert language.of_reply("Is there anything else I can help with?") == "en"
    assert language.of_reply("CJ대한통운으로 보냈어요.") == "ko"
    assert language.of_reply("12,000원") == "ko"


def says(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, Say)]


def test_english_caller_is_answered_in_english_and_korean_stays_the_default() -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    first = list(conv.respond("Thank you so much", "asr"))
    text = " ".join(says(first))
    assert text.startswith(ENGLISH_HELLO) and "You're welcome" in text
    assert not [e for e in first if isinstance(e, Escalate)]
    bye = list(conv.respond("No, that's all, goodbye", "asr"))
    assert "Thank you for calling" in " ".join(says(bye)) and isinstance(bye[-1], EndCall)
    korean = scripted(None).open(CallInfo(call_id="k"))
    assert says(list(korean.respond("감사합니다", "asr"))) == ["천만에요.", "더 도와드릴 일이 있을까요?"]


def test_an_answer_that_exists_only_in_korean_hands_the_english_caller_to_a_person(db) -> None:
    conv = scripted(db).open(CallInfo(call_id="c", caller="01012345678"))
    events = list(conv.respond("Where is my order 123456?", "asr"))
    spoken = " ".join(says(events))
    assert ENGLISH_HANDOFF in spoken and language.detect(spoken) == "en"
    [esc] = [e for e in events if isinstance(e, Escalate)]
    assert esc.reason == escalation.LANGUAGE_SUPPORT and "영어 상담 필요" in esc.summary


def test_switch_to_english_mid_call_and_the_voice_follows(tmp_path: Path) -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    assert says(list(conv.respond("감사합니다", "asr")))[0] == "천만에요."
    reply = " ".join(says(list(conv.respond("Sorry, I don't speak Korean, thank you", "asr"))))
    assert reply.startswith(ENGLISH_HELLO)
    engine = FakeTts()
    voices: list[str] = []
    real = engine.synthesize

    def record(text: str, voice: str):  # type: ignore[no-untyped-def]
        voices.append(voice)
        return real(text, voice)

    engine.synthesize = record  # type: ignore[method-assign]
    speaker = Speaker(engine, Spool(tmp_path), voice="ko", max_chunk_chars=60, voices={"en": "en"})
    chunks = list(speaker.speak("c", "u1", reply, 8000))
    assert set(voices) == {"en"} and engine.calls == [c.tts_text for c in chunks if c.tts_text]
    list(speaker.speak("c", "u2", "천만에요. 더 도와드릴 일이 있을까요?", 8000))
    assert voices[-1] == "ko"


def test_dtmf_does_not_decide_the_language() -> None:
    conv = scripted(None).open(CallInfo(call_id="c"))
    list(conv.respond("0", "dtmf"))
    assert not conv.language.decided


def test_an_english_question_the_korean_knowledge_base_cannot_answer_is_handed_over(db) -> None:
    conv = scripted(db).open(CallInfo(call_id="c"))
    events = list(conv.respond("What is your return policy for shoes?", "asr"))
    assert ENGLISH_HANDOFF in " ".join(says(events))
    assert [e.reason for e in events if isinstance(e, Escalate)] == [escalation.LANGUAGE_SUPPORT]
