"""Command strings at their edges, exactly as FreeSWITCH receives them (freeswitch.md §1.4, §3.1, §4): what each
builder accepts, what it refuses and why, and the bytes it puts on the wire."""

import json

import pytest

from agent.esl import commands as cmd

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


def test_the_subscription_line_names_every_event_the_controller_handles():
    assert cmd.event_subscription() == (
        "event plain PLAYBACK_START PLAYBACK_STOP DTMF CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE_COMPLETE "
        "RECORD_START RECORD_STOP CUSTOM mod_audio_fork::connect mod_audio_fork::connect_failed "
        "mod_audio_fork::disconnect mod_audio_fork::error mod_audio_fork::json mod_audio_fork::transcription "
        "mod_audio_fork::buffer_overrun")


@pytest.mark.parametrize("value", ["a", "Z9", "a_b.c/d:e@f+g=h,i{j}k-l"])
def test_tokens_of_safe_characters_pass_unchanged(value):
    assert cmd.uuid_kill(value, value) == f"uuid_kill {value} {value}"


@pytest.mark.parametrize("value", ["", "a b", "a\tb", "it's", 'a"b', "a\\b", "a;b", "a\nb", "한글", "abc\n"])
def test_tokens_that_freeswitch_would_split_or_strip_are_refused(value):
    with pytest.raises(ValueError, match="uuid"):
        cmd.uuid_break(value)


def test_each_refusal_names_the_argument_at_fault():
    with pytest.raises(ValueError, match="^extension 'a b' has characters FreeSWITCH would split or strip$"):
        cmd.uuid_transfer(UUID, "a b", "XML", "ctx")
    with pytest.raises(ValueError, match="^dialplan "):
        cmd.uuid_transfer(UUID, "human", "X ML", "ctx")
    with pytest.raises(ValueError, match="^context "):
        cmd.uuid_transfer(UUID, "human", "XML", "c tx")
    with pytest.raises(ValueError, match="^cause "):
        cmd.uuid_kill(UUID, "NORMAL CLEARING")
    with pytest.raises(ValueError, match="^tag "):
        cmd.playback_path("/a.wav", {"a b": 1})
    with pytest.raises(ValueError, match="^tag value "):
        cmd.playback_path("/a.wav", {"a": "b c"})
    with pytest.raises(ValueError, match="^playback path "):
        cmd.playback_path("/a b.wav", {})
    with pytest.raises(ValueError, match="^url "):
        cmd.uuid_audio_fork_start(UUID, "ws://h/ x", 8000, "b", {})
    with pytest.raises(ValueError, match="^bug "):
        cmd.uuid_audio_fork_stop(UUID, "b b")
    with pytest.raises(ValueError, match="^recording path "):
        cmd.uuid_record(UUID, "start", "/r r.wav")


def test_playback_path_with_and_without_tags():
    assert cmd.playback_path("/s/r1.wav", {}) == "/s/r1.wav"
    assert cmd.playback_path("/s/r1.wav", {"utt_id": "r1"}) == "{utt_id=r1}/s/r1.wav"
    assert cmd.playback_path("/s/r1.wav", {"a": 1, "b": "x"}) == "{a=1,b=x}/s/r1.wav"


def test_transfer_and_kill_lines():
    assert cmd.uuid_transfer(UUID, "human", "XML", "ai_escalation") == f"uuid_transfer {UUID} human XML ai_escalation"
    assert cmd.uuid_kill(UUID) == f"uuid_kill {UUID} NORMAL_CLEARING"
    assert cmd.uuid_kill(UUID, "USER_BUSY") == f"uuid_kill {UUID} USER_BUSY"


def test_clean_value_keeps_one_bounded_line_without_quotes():
    assert cmd.clean_value("a\r\nb\tc\n\nd") == "a b c d"
    assert cmd.clean_value("it's \"quoted\" \\ here") == "its quoted here"
    assert cmd.clean_value("  a    b  ") == "a b"
    assert cmd.clean_value("") == "-" and cmd.clean_value(" \n ") == "-" and cmd.clean_value("'\"") == "-"
    assert cmd.clean_value("가" * 600) == "가" * 480
    assert cmd.clean_value("abcdef", limit=3) == "abc"


def test_setvar_names_and_values():
    assert cmd.uuid_setvar(UUID, "_x1", "a  b") == f"uuid_setvar {UUID} _x1 a b"
    assert cmd.uuid_setvar(UUID, "ai_priority", "") == f"uuid_setvar {UUID} ai_priority -"
    for bad in ("1abc", "a-b", "a b", "", "a;b", "변수", "ai_priority\n"):
        with pytest.raises(ValueError, match="bad channel variable name"):
            cmd.uuid_setvar(UUID, bad, "x")


def test_metadata_gets_look_alikes_for_what_the_splitter_would_eat():
    text = cmd.fork_metadata({"a": "it's", "b": 'say "hi"', "c": "x\\y", "d": "del\x7fx", "e": "t\x1fa\x00b\nc",
                              "f": "한 글"})
    assert json.loads(text) == {"a": "it\u2019s", "b": "say \u201dhi\u201d", "c": "x\uff3cy", "d": "del x",
                                "e": "t a b c", "f": "한 글"}
    assert text == ('{"a":"it\u2019s","b":"say \u201dhi\u201d","c":"x\uff3cy","d":"del x","e":"t a b c",'
                    '"f":"한 글"}')


def test_metadata_lists_are_cleaned_and_numbers_kept():
    text = cmd.fork_metadata({"hotwords": ["O'Neil", "하늘"], "rate": 8000, "ok": True, "x": 1.5})
    assert text == '{"hotwords":["O\u2019Neil","하늘"],"rate":8000,"ok":true,"x":1.5}'


def test_metadata_keys_with_quotes_or_backslashes_are_refused():
    with pytest.raises(ValueError, match="single quotes or backslashes"):
        cmd.fork_metadata({"it's": 1})
    with pytest.raises(ValueError, match="single quotes or backslashes"):
        cmd.fork_metadata({"a\\b": 1})


def test_metadata_may_be_8192_bytes_and_no_more():
    fits = "a" * (8192 - len('{"k":""}'))
    assert len(cmd.fork_metadata({"k": fits}).encode()) == 8192
    with pytest.raises(ValueError, match="8192 bytes"):
        cmd.fork_metadata({"k": fits + "a"})
    with pytest.raises(ValueError, match="8192 bytes"):  # bytes, not characters
        cmd.fork_metadata({"k": "가" * 2800})


def test_fork_start_for_each_rate_and_mix():
    line = cmd.uuid_audio_fork_start(UUID, "ws://w:8090/x", 8000, "callagent", {"a": 1})
    assert line == f"uuid_audio_fork {UUID} start ws://w:8090/x mono 8k callagent '{{\"a\":1}}'"
    assert " mixed 16k " in cmd.uuid_audio_fork_start(UUID, "ws://w/x", 16000, "b", {}, mix="mixed")
    assert " stereo 16k b '{}'" in cmd.uuid_audio_fork_start(UUID, "ws://w/x", 16000, "b", {}, mix="stereo")
    with pytest.raises(ValueError, match="mono, stereo or mixed"):
        cmd.uuid_audio_fork_start(UUID, "ws://w/x", 16000, "b", {}, mix="Mono")
    with pytest.raises(KeyError):
        cmd.uuid_audio_fork_start(UUID, "ws://w/x", 44100, "b", {})
    assert cmd.uuid_audio_fork_stop(UUID, "callagent") == f"uuid_audio_fork {UUID} stop callagent"


@pytest.mark.parametrize("command", ["pause", "stop", "restart", "volume:3", "volume:+3", "volume:-12", "seek:500",
                                     "seek:+1000", "seek:-200"])
def test_fileman_commands_freeswitch_knows(command):
    assert cmd.uuid_fileman(UUID, command) == f"uuid_fileman {UUID} {command}"


@pytest.mark.parametrize("command", ["", "Pause", "pauses", "xpause", "volume:", "volume:x", "seek:1s", "volume:+-1",
                                     "stop\n"])
def test_fileman_commands_it_does_not_know(command):
    with pytest.raises(ValueError, match="unknown fileman command"):
        cmd.uuid_fileman(UUID, command)


def test_record_actions():
    for action in ("start", "stop", "mask", "unmask"):
        assert cmd.uuid_record(UUID, action, "/r/a.wav") == f"uuid_record {UUID} {action} /r/a.wav"
    with pytest.raises(ValueError, match="unknown uuid_record action"):
        cmd.uuid_record(UUID, "Start", "/r/a.wav")


def test_api_ok_reads_only_a_leading_plus_ok():
    assert cmd.api_ok("+OK\n") and cmd.api_ok("+OK Success\n") and cmd.api_ok("+OK Message sent\n")
    assert not cmd.api_ok("-ERR No such channel!\n") and not cmd.api_ok("") and not cmd.api_ok(" +OK")
    assert not cmd.api_ok("+ok\n")


@pytest.mark.parametrize("build", [
    lambda u: cmd.uuid_break(u), lambda u: cmd.uuid_kill(u), lambda u: cmd.uuid_transfer(u, "h", "XML", "c"),
    lambda u: cmd.uuid_setvar(u, "v", "x"), lambda u: cmd.uuid_audio_fork_start(u, "ws://w/x", 8000, "b", {}),
    lambda u: cmd.uuid_audio_fork_stop(u, "b"), lambda u: cmd.uuid_fileman(u, "pause"),
    lambda u: cmd.uuid_record(u, "start", "/r.wav"),
])
def test_a_bad_uuid_is_named_as_the_uuid_in_every_builder(build):
    with pytest.raises(ValueError, match="^uuid 'a b' has characters"):
        build("a b")


def test_fork_refusals_name_the_bug_and_the_metadata():
    with pytest.raises(ValueError, match="^bug 'b b' "):
        cmd.uuid_audio_fork_start(UUID, "ws://w/x", 8000, "b b", {})
    with pytest.raises(ValueError, match="^fork metadata must not contain single quotes or backslashes$"):
        cmd.fork_metadata({"it's": 1})
    with pytest.raises(ValueError, match="^fork metadata is longer than mod_audio_fork's 8192 bytes$"):
        cmd.fork_metadata({"k": "a" * 9000})
