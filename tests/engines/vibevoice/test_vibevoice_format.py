"""The shared VibeVoice-ASR prompt and the tolerant output reader (pure functions)."""

from __future__ import annotations

import pytest

from agent.engines.asr.base import AsrSegment
from agent.engines.asr.vibevoice_format import (
    collapse_loops,
    parse_transcription,
    split_speaker_prefix,
    to_result,
    token_budget,
    user_prompt,
)


def test_prompt_wording_matches_training() -> None:
    assert user_prompt(12.345, "Acme,John Kim") == (
        "This is a 12.35 seconds audio, with extra info: Acme,John Kim\n\n"
        "Please transcribe it with these keys: Start time, End time, Speaker ID, Content")
    assert user_prompt(3, "  ") == (
        "This is a 3.00 seconds audio, please transcribe it with these keys: Start time, End time, Speaker ID, Content")


@pytest.mark.parametrize("raw, expected", [
    ('[{"Start":0,"End":1.5,"Speaker":1,"Content":"여보세요"}]', [AsrSegment("여보세요", 0.0, 1.5, 1)]),
    ('assistant\n```json\n[{"Start time":"0.2","End time":"0.9s","Speaker ID":"0","Content":"네"}',
     [AsrSegment("네", 0.2, 0.9, 0)]),  # unclosed fence, string numbers, long keys, no closing bracket
    ('{"Start":0.5,"End":9.0,"Content":"한 개"}', [AsrSegment("한 개", 0.5, 2.0, None)]),  # clamped
    ('[{"Start":0,"End":1,"Content":""}, 3, {"Start":1,"End":2,"Content":"둘"}]', [AsrSegment("둘", 1.0, 2.0)]),
    ('[{"Start":0,"End":1,"Speaker":0,"Content":"네"},{"Start":0,"End":1,"Speaker":0,"Content":"네"}]',
     [AsrSegment("네", 0.0, 1.0, 0)]),  # an exact repeat of the previous segment is a loop symptom
    ("Speaker 2: 그냥 텍스트예요", [AsrSegment("그냥 텍스트예요", 0.0, 2.0, 2)]),
    ("", []),
    ("[", []),
])
def test_parse_transcription(raw: str, expected: list[AsrSegment]) -> None:
    assert parse_transcription(raw, 2.0) == expected


def test_loops_collapse_but_numbers_and_backchannels_survive() -> None:
    assert collapse_loops("malo, " * 12 + "malo") == "malo"
    assert collapse_loops("계좌 110 000 000 000 000 000 000 입니다") == "계좌 110 000 000 000 000 000 000 입니다"
    assert collapse_loops("네네네네네네네네") == "네네네네네네네네"
    assert collapse_loops("감사합니다 감사합니다") == "감사합니다 감사합니다"


def test_result_text_drops_non_speech_tags() -> None:
    segs = [AsrSegment("[Noise]", 0, 1, 0), AsrSegment("[Laughter] 네 알겠습니다", 1, 2, 0)]
    assert to_result(segs, "e").text == "네 알겠습니다"
    assert to_result(segs, "e").segments == tuple(segs)


def test_budget_and_speaker_prefix() -> None:
    assert token_budget(1.0, 1024) == 84 and token_budget(10.0, 1024) == 264
    assert token_budget(600, 1024) == 1024 and token_budget(0, 8) == 16
    assert split_speaker_prefix("Speaker 1: 네") == (1, "네")
    assert split_speaker_prefix(" 네 ") == (None, "네")
