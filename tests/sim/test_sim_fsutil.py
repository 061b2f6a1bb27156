"""switch_separate_string, file params, cJSON printing and event names as the simulator reproduces them."""

from __future__ import annotations

from agent.sim.fsutil import cjson_dumps, name_event, separate_string, split_file_params


def test_quoted_metadata_keeps_its_spaces_and_loses_its_quotes():
    cmd = "u1 start ws://127.0.0.1:8090/u1 mono 16k callagent '{\"call_id\": \"u1\", \"lang\": \"ko\"}'"
    assert separate_string(cmd, " ", 7) == [
        "u1", "start", "ws://127.0.0.1:8090/u1", "mono", "16k", "callagent",
        '{"call_id": "u1", "lang": "ko"}']


def test_unquoted_metadata_with_spaces_becomes_the_bugname():
    # §9: "bug name becomes {"a":" — the 7th piece keeps the rest of the line.
    argv = separate_string('u1 start ws://h/u1 mono 16k {"a": 1, "b": 2}', " ", 7)
    assert argv[5:] == ['{"a":', '1, "b": 2}']


def test_caret_delimiter_form_drops_an_empty_trailing_field():
    argv = separate_string('^^|u1|start|ws://h/u1|mono|16k|bug|{"a": 1}|true|false|', " ", 10)
    assert argv == ["u1", "start", "ws://h/u1", "mono", "16k", "bug", '{"a": 1}', "true", "false"]
    assert separate_string("a||b", "|", 10) == ["a", "", "b"]


def test_escapes_and_surrounding_spaces():
    # With the blank delimiter, "\\ " is not an escape (cleanup_separated_string gets delim 0): quote instead.
    assert separate_string("a  b\\ c   ", " ", 7) == ["a", "b\\ c"]
    assert separate_string("a  'b c'   ", " ", 7) == ["a", "b c"]
    assert separate_string(r"x a\nb", " ", 7) == ["x", "a\nb"]
    assert separate_string("uuid var hello  world", " ", 3) == ["uuid", "var", "hello  world"]


def test_file_params_prefix():
    assert split_file_params("{utt_id=7,chunk=0}/tmp/7.wav") == ({"utt_id": "7", "chunk": "0"}, "/tmp/7.wav")
    assert split_file_params("{a=1}{b='x,y'} /t.wav") == ({"a": "1", "b": "x,y"}, "/t.wav")
    assert split_file_params("/plain.wav") == ({}, "/plain.wav")


def test_cjson_compact_print():
    assert cjson_dumps({"text": "주문", "conf": 1.0, "p": 0.25, "ok": True, "n": None}) == (
        '{"text":"주문","conf":1,"p":0.25,"ok":true,"n":null}')


def test_event_names():
    assert name_event("playback_start") == "PLAYBACK_START"
    assert name_event("SWITCH_EVENT_DTMF") == "DTMF"
    assert name_event("NOT_AN_EVENT") is None
