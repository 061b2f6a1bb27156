"""The simulator's ESL bytes against hand-written expectations (freeswitch.md §1.1, §1.3, §1.7)."""

from __future__ import annotations

import pytest

from agent.sim import wire


def test_url_encode_escapes_every_unsafe_character_of_switch_url_encode():
    unsafe = '\r\n #%&+:;<=>?@[\\]^`{|}"'
    assert wire.url_encode(unsafe) == "%0D%0A%20%23%25%26%2B%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D%22"


def test_url_encode_leaves_safe_ascii_alone_and_encodes_controls_del_and_utf8():
    assert wire.url_encode("abcXYZ019-_.~!$'()*,/") == "abcXYZ019-_.~!$'()*,/"
    assert wire.url_encode("a\tb\x7f") == "a%09b%7F"
    assert wire.url_encode("주문") == "%EC%A3%BC%EB%AC%B8"


def test_url_encode_keeps_existing_uppercase_escapes_only():
    assert wire.url_encode("a%2Bb") == "a%2Bb"
    assert wire.url_encode("a%2bb") == "a%252bb"          # lowercase hex is not an escape to FreeSWITCH
    assert wire.url_encode("100%") == "100%25"
    assert wire.url_encode("%4") == "%254"                 # needs two characters after '%'
    assert wire.url_encode("%41%") == "%41%25"


def test_url_encode_matches_values_seen_on_the_wire():
    assert wire.url_encode("mod_audio_fork::json") == "mod_audio_fork%3A%3Ajson"
    assert wire.url_encode("+OK\n") == "%2BOK%0A"
    assert wire.url_encode("Fri, 25 Aug 2026 10:00:00 GMT") == "Fri,%2025%20Aug%202026%2010%3A00%3A00%20GMT"


def test_event_with_korean_body_counts_bytes_and_has_no_terminator():
    headers = [("Event-Name", "CUSTOM"), ("Event-Subclass", "mod_audio_fork::transcription"), ("Empty", "")]
    inner = wire.serialize_event(headers, '{"text":"안녕"}')
    assert inner == ("Event-Name: CUSTOM\nEvent-Subclass: mod_audio_fork%3A%3Atranscription\nEmpty: _undef_\n"
                     'Content-Length: 17\n\n{"text":"안녕"}').encode()
    framed = wire.frame_event(inner)
    # 19 + 50 + 15 header bytes, 20 for the inner Content-Length line, 17 body bytes (안녕 is 6 bytes).
    assert framed == b"Content-Length: 121\nContent-Type: text/event-plain\n\n" + inner


def test_event_without_body_ends_with_a_blank_line():
    assert wire.serialize_event([("Event-Name", "DTMF"), ("DTMF-Digit", "#")]) == (
        b"Event-Name: DTMF\nDTMF-Digit: %23\n\n")


def test_replies_and_notices_are_byte_exact():
    assert wire.command_reply("+OK Events Enabled") == (
        b"Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n")
    assert wire.command_reply("~Reply-Text: +OK Job-UUID: j\nJob-UUID: j\n\n") == (
        b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j\nJob-UUID: j\n\n")
    assert wire.api_response("+OK\n") == b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
    assert wire.api_response("") == b"Content-Type: api/response\nContent-Length: 14\n\n-ERR no reply\n"
    assert wire.api_response("한") == b"Content-Type: api/response\nContent-Length: 3\n\n" + "한".encode()
    assert wire.disconnect_notice("u-1") == (
        b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: u-1\n"
        b"Content-Disposition: disconnect\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")
    assert wire.linger_notice("u-1", "sofia/external/1@h", -1) == (
        b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: u-1\nContent-Disposition: linger\n"
        b"Channel-Name: sofia/external/1@h\nLinger-Time: -1\nContent-Length: 0\n\n")


def test_command_reader_skips_blank_lines_ignores_cr_and_reads_bodies_across_feeds():
    reader = wire.CommandReader()
    assert reader.feed(b"\r\n\r\napi uuid_break u all\r\n\r") == []
    [cmd] = reader.feed(b"\n")
    assert cmd.line == "api uuid_break u all" and cmd.headers == [] and cmd.body is None
    assert reader.feed(b"sendmsg\ncall-command: execute\nexecute-app-name:playback\nno colon line\n") == []
    assert reader.feed(b"content-type: text/plain\nContent-Length: 10\n\n{utt=") == []
    [msg, nxt] = reader.feed(b"1}a.wexit\n\n")
    assert msg.line == "sendmsg"
    assert msg.headers == [("call-command", "execute"), ("execute-app-name", "playback"),
                           ("content-type", "text/plain"), ("Content-Length", "10")]
    assert msg.header("CALL-COMMAND") == "execute" and msg.body == "{utt=1}a.w"
    assert nxt.line == "exit"


def test_command_reader_body_length_is_in_bytes():
    reader = wire.CommandReader()
    body = "주문".encode()
    [cmd] = reader.feed(b"sendmsg\nContent-Length: 6\n\n" + body)
    assert cmd.body == "주문"


def test_command_reader_rejects_negative_content_length():
    with pytest.raises(ValueError, match="Content-Length"):
        wire.CommandReader().feed(b"sendmsg\nContent-Length: -5\n\n")
