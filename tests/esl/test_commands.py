"""Command strings exactly as FreeSWITCH parses them (freeswitch.md §3.1, §4)."""

import pytest

from agent.esl import commands as cmd

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


def test_fork_start_quotes_compact_metadata():
    line = cmd.uuid_audio_fork_start(UUID, f"ws://127.0.0.1:8090/{UUID}", 16000, "callagent",
                                     {"call_id": UUID, "rate": 16000, "industry": "ecommerce"})
    assert line == (f"uuid_audio_fork {UUID} start ws://127.0.0.1:8090/{UUID} mono 16k callagent "
                    f"'{{\"call_id\":\"{UUID}\",\"rate\":16000,\"industry\":\"ecommerce\"}}'")


def test_metadata_with_spaces_or_quotes_is_refused():
    with pytest.raises(ValueError):
        cmd.fork_metadata({"tenant": "a b"})
    with pytest.raises(ValueError):
        cmd.fork_metadata({"tenant": "it's"})


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
