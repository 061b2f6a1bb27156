"""Command strings exactly as FreeSWITCH parses them (freeswitch.md §3.1, §4)."""

import json

import pytest

from agent.esl import commands as cmd

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


def test_fork_start_quotes_compact_metadata():
    line = cmd.uuid_audio_fork_start(UUID, f"ws://127.0.0.1:8090/{UUID}", 16000, "callagent",
                                     {"call_id": UUID, "rate": 16000, "industry": "ecommerce"})
    assert line == (f"uuid_audio_fork {UUID} start ws://127.0.0.1:8090/{UUID} mono 16k callagent "
                    f"'{{\"call_id\":\"{UUID}\",\"rate\":16000,\"industry\":\"ecommerce\"}}'")


def test_metadata_keeps_spaces_and_unicode_and_never_carries_quotes_or_backslashes():
    # Wrapped in single quotes, the last argument keeps its spaces (freeswitch.md §10); FreeSWITCH's splitter
    # would strip a single quote and process a backslash, so those get look-alikes (a JSON escape is one).
    assert cmd.fork_metadata({"tenant": "하늘 쇼핑"}) == '{"tenant":"하늘 쇼핑"}'
    text = cmd.fork_metadata({"tenant": "it's \\ \"x\"\n"})
    assert "'" not in text and "\\" not in text and json.loads(text)["tenant"] == "it’s ＼ ”x” "
    with pytest.raises(ValueError):
        cmd.fork_metadata({"hotwords": ["가" * 3000]})  # over mod_audio_fork's 8192 bytes


def test_playback_tags_and_break_all():
    assert cmd.playback_path("/var/spool/r1-1-0.wav", {"utt_id": "r1", "chunk": 0}) == \
        "{utt_id=r1,chunk=0}/var/spool/r1-1-0.wav"
    assert cmd.uuid_break(UUID) == f"uuid_break {UUID} all"
    with pytest.raises(ValueError):
        cmd.playback_path("/tmp/has space.wav", {})


def test_setvar_value_is_one_clean_line():
    line = cmd.uuid_setvar(UUID, "ai_summary", "주문 123456 조회.\n고객이 \"환불\" 요청")
    assert line == f"uuid_setvar {UUID} ai_summary 주문 123456 조회. 고객이 환불 요청"
    with pytest.raises(ValueError):
        cmd.uuid_setvar(UUID, "bad name", "x")


def test_transfer_and_subscription():
    assert cmd.uuid_transfer(UUID, "human", "XML", "ai_escalation") == \
        f"uuid_transfer {UUID} human XML ai_escalation"
    sub = cmd.event_subscription()
    assert sub.startswith("event plain PLAYBACK_START PLAYBACK_STOP DTMF")
    assert "CUSTOM mod_audio_fork::connect mod_audio_fork::connect_failed" in sub
