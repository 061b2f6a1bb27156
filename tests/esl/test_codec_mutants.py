"""The ESL codec at its edges (freeswitch.md §1.1–§1.4): framing (LF or CRLF, leading blank lines, a body split
across reads), the caps that protect memory, header values as FreeSWITCH writes them, and the exact bytes of a
command."""

import json

import pytest

from agent.esl.codec import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    Decoder,
    Event,
    Message,
    ProtocolError,
    encode_command,
    parse_event,
)


def feed_all(*chunks: bytes) -> list[Message]:
    d = Decoder()
    return [m for c in chunks for m in d.feed(c)]


def plain(body: bytes) -> Message:
    return Message({"Content-Type": "text/event-plain"}, body)


def test_leading_blank_lines_of_either_kind_are_skipped():
    (m,) = feed_all(b"\r\n\n\r\nContent-Type: auth/request\n\n")
    assert m.headers == {"Content-Type": "auth/request"} and m.body == b""


def test_the_earlier_of_lf_and_crlf_framing_ends_the_block():
    a, b = feed_all(b"A: 1\r\n\r\nB: 2\n\n")
    assert (a.headers, b.headers) == ({"A": "1"}, {"B": "2"})
    a, b = feed_all(b"A: 1\n\nB: 2\r\n\r\n")
    assert (a.headers, b.headers) == ({"A": "1"}, {"B": "2"})


def test_a_body_split_over_reads_and_the_next_message_in_the_same_read():
    d = Decoder()
    assert list(d.feed(b"Content-Type: api/response\nContent-Length: 5\n\n+O")) == []
    assert list(d.feed(b"K")) == []
    a, b = d.feed(b"\n\nReply-Text: +OK\n\n")
    assert (a.body, a.content_type, b.reply_text) == (b"+OK\n\n", "api/response", "+OK")
    assert list(d.feed(b"")) == []


def test_a_zero_length_body_and_one_of_exactly_its_length():
    (m,) = feed_all(b"Content-Length: 0\n\n")
    assert m.body == b""
    m1, m2 = feed_all(b"Content-Length: 3\n\nabcX: y\n\n")
    assert m1.body == b"abc" and m2.headers == {"X": "y"}


def test_content_length_rules():
    assert feed_all(b"Content-Length:  7 \n\n1234567")[0].body == b"1234567"
    for bad in (b"-1", b"abc", b"1.5", b""):
        with pytest.raises(ProtocolError, match="bad Content-Length"):
            feed_all(b"Content-Length: " + bad + b"\n\n")
    assert feed_all(f"Content-Length: {MAX_BODY_BYTES}\n\n".encode()) == []  # allowed: waits for the body
    with pytest.raises(ProtocolError, match="exceeds"):
        feed_all(f"Content-Length: {MAX_BODY_BYTES + 1}\n\n".encode())


def test_a_header_block_may_reach_the_cap_but_not_pass_it():
    d = Decoder()
    assert list(d.feed(b"X" * MAX_HEADER_BYTES)) == []
    with pytest.raises(ProtocolError, match="header block too long"):
        list(Decoder().feed(b"X" * (MAX_HEADER_BYTES + 1)))


def test_header_lines_as_freeswitch_writes_them():
    (m,) = feed_all(b"Name :   v a l \r\nTime: 12:30:01\n\n")
    assert m.headers == {"Name": "v a l ", "Time": "12:30:01"}
    with pytest.raises(ProtocolError, match="without ':'"):
        feed_all(b"no colon here\n\n")
    (m,) = feed_all(b"X: caf\xc3\xa9 \xff\n\n")
    assert m.headers["X"] == "café \ufffd"
    (m,) = feed_all(b"X: a%20b%ZZ\n\n")
    assert m.headers["X"] == "a b%ZZ"


def test_message_defaults():
    m = Message({})
    assert (m.content_type, m.reply_text, m.body) == ("", "", b"")


def test_event_lookup_is_case_blind_with_a_default():
    ev = Event({"Event-Name": "CUSTOM", "event-subclass": "mod_audio_fork::json", "Unique-ID": "u1"})
    assert (ev.name, ev.subclass, ev.uuid) == ("CUSTOM", "mod_audio_fork::json", "u1")
    assert ev.get("EVENT-NAME") == "CUSTOM" and ev.get("Missing") == "" and ev.get("Missing", "d") == "d"
    assert Event({}).name == "" and Event({}).uuid == ""


@pytest.mark.parametrize("body, parsed", [("", None), ("not json", None), ("[1, 2]", None), ('"x"', None),
                                          ('{"a": 1}', {"a": 1})])
def test_json_body(body, parsed):
    assert Event({}, body).json_body() == parsed


def test_plain_event_with_an_inner_body_and_one_without():
    ev = parse_event(plain(b"Event-Name: CUSTOM\nContent-Length: 4\n\n{\"a\"}extra"))
    assert ev.body == '{"a"' and "Content-Length" not in ev.headers and ev.name == "CUSTOM"
    ev = parse_event(plain(b"Event-Name: DTMF\nDTMF-Digit: %23"))
    assert ev.headers == {"Event-Name": "DTMF", "DTMF-Digit": "#"} and ev.body == ""
    ev = parse_event(plain(b"Event-Name: X\n\nignored without a length"))
    assert ev.body == ""
    ev = parse_event(plain(b"Event-Name: X\nContent-Length: 2\n\n\xc3\xa9"))
    assert ev.body == "é"


def test_json_event():
    body = {"Event-Name": "CUSTOM", "Content-Length": "3", "_body": "abc", "list": ["a", "b"], "Unique-ID": "u"}
    ev = parse_event(Message({"Content-Type": "text/event-json"}, json.dumps(body).encode()))
    assert ev.headers == {"Event-Name": "CUSTOM", "list": "a,b", "Unique-ID": "u"} and ev.body == "abc"
    ev = parse_event(Message({"Content-Type": "text/event-json"}, b'{"Event-Name": "X"}'))
    assert ev.body == "" and ev.name == "X"
    with pytest.raises(ProtocolError, match="bad event-json body"):
        parse_event(Message({"Content-Type": "text/event-json"}, b"{oops"))
    with pytest.raises(ProtocolError, match="not an event: 'command/reply'"):
        parse_event(Message({"Content-Type": "command/reply"}))


def test_encode_command_bytes():
    assert encode_command("exit") == b"exit\n\n"
    assert encode_command("sendmsg", {"call-command": "execute", "execute-app-name": "answer"}) == \
        b"sendmsg\ncall-command: execute\nexecute-app-name: answer\n\n"
    assert encode_command("sendmsg", body="") == b"sendmsg\nContent-Length: 0\n\n"
    assert encode_command("sendmsg", {"a": "1"}, body="한\n") == "sendmsg\na: 1\nContent-Length: 4\n\n한\n".encode()


@pytest.mark.parametrize("command", ["a\nb", "a\rb"])
def test_a_command_is_one_line(command):
    with pytest.raises(ValueError, match="one line"):
        encode_command(command)


@pytest.mark.parametrize("value", ["a\nb", "a\rb"])
def test_a_header_value_is_one_line(value):
    with pytest.raises(ValueError, match="header X must be one line"):
        encode_command("sendmsg", {"X": value})


def test_bytes_that_are_not_utf_8_become_replacement_characters_everywhere():
    (m,) = feed_all(b"N\xffame: a%FFb\n\n")
    assert m.headers == {"N\ufffdame": "a\ufffdb"}
    assert parse_event(plain(b"Event-Name: X\nContent-Length: 1\n\n\xff")).body == "\ufffd"


def test_only_spaces_before_a_value_and_only_cr_after_it_are_dropped():
    (m,) = feed_all(b"A:\tv\r\nB: Xv X\r\nC: v\rX\n\n")
    assert m.headers == {"A": "\tv", "B": "Xv X", "C": "v\rX"}


def test_a_line_of_only_cr_inside_a_block_is_skipped_not_the_end():
    (m,) = feed_all(b"A: 1\n\r\nB: 2\n\n")
    assert m.headers == {"A": "1", "B": "2"}


def test_two_crlf_framed_messages_in_one_read_stay_two():
    a, b = feed_all(b"A: 1\r\n\r\nB: 2\r\n\r\n")
    assert (a.headers, b.headers) == ({"A": "1"}, {"B": "2"})


def test_an_inner_body_may_hold_blank_lines():
    ev = parse_event(plain(b"Event-Name: X\nContent-Length: 5\n\nab\n\nc"))
    assert ev.body == "ab\n\nc" and ev.name == "X"
    ev = parse_event(plain(b"Event-Name: X\nContent-Length: 3"))  # a length but no body at all
    assert ev.body == "" and ev.headers == {"Event-Name": "X"}


def test_protocol_errors_say_what_was_wrong():
    with pytest.raises(ProtocolError, match=r"^header line without ':': b'" + "x" * 80 + "'$"):
        feed_all(b"x" * 100 + b"\n\n")
    with pytest.raises(ProtocolError, match="^header block too long$"):
        list(Decoder().feed(b"X" * (MAX_HEADER_BYTES + 1)))
    with pytest.raises(ValueError, match="^an ESL command must be one line$"):
        encode_command("a\nb")
