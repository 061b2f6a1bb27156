"""ESL codec against hand-written FreeSWITCH bytes (freeswitch.md §1.1, §1.3, §9)."""

import json

import pytest

from agent.esl.codec import Decoder, ProtocolError, encode_command, parse_event

CONNECT_REPLY = (
    b"Event-Name: CHANNEL_DATA\nCore-UUID: 5a0c\nChannel-Unique-ID: 1b2c-3d\n"
    b"Caller-Caller-ID-Number: 01012345678\nUnique-ID: 1b2c-3d\n"
    b"variable_current_application_data: 127.0.0.1%3A8084%20async%20full\n"
    b"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n"
)


def plain_event(headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    inner = "".join(f"{k}: {v}\n" for k, v in headers).encode()
    if body:
        inner += b"Content-Length: %d\n\n" % len(body) + body
    else:
        inner += b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def test_connect_reply_without_content_length_is_url_decoded():
    (msg,) = list(Decoder().feed(CONNECT_REPLY))
    assert msg.content_type == "command/reply"
    assert msg.reply_text == "+OK\n"
    assert msg.headers["variable_current_application_data"] == "127.0.0.1:8084 async full"
    assert msg.body == b""


def test_custom_event_with_json_body_keeps_body_and_decodes_subclass():
    body = json.dumps({"event": "transcript", "text": "주문 조회요", "final": True}, ensure_ascii=False).encode()
    data = plain_event([("Event-Name", "CUSTOM"), ("Event-Subclass", "mod_audio_fork%3A%3Atranscription"),
                        ("Unique-ID", "u-1")], body)
    (msg,) = list(Decoder().feed(data))
    ev = parse_event(msg)
    assert ev.name == "CUSTOM" and ev.subclass == "mod_audio_fork::transcription"
    assert ev.json_body()["text"] == "주문 조회요"
    assert "Content-Length" not in ev.headers


def test_url_encoded_newline_in_a_value_cannot_inject_headers():
    data = plain_event([("Event-Name", "DTMF"), ("Caller-Caller-ID-Name", "evil%0AEvent-Name%3A%20HANGUP")])
    ev = parse_event(next(Decoder().feed(data)))
    assert ev.name == "DTMF"
    assert ev.get("Caller-Caller-ID-Name") == "evil\nEvent-Name: HANGUP"


def test_several_messages_in_one_read_and_one_split_across_reads():
    api = b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
    ev = plain_event([("Event-Name", "PLAYBACK_START"), ("utt_id", "r1"), ("chunk", "0")])
    stream = b"Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n" + api + ev + api
    out = list(Decoder().feed(stream))
    assert [m.content_type for m in out] == ["command/reply", "api/response", "text/event-plain", "api/response"]
    assert out[1].body == b"+OK\n"
    # Byte by byte: nothing comes out until a message is whole, and the result is the same.
    dec, got = Decoder(), []
    for i in range(len(stream)):
        got.extend(dec.feed(stream[i:i + 1]))
    assert [(m.headers, m.body) for m in got] == [(m.headers, m.body) for m in out]


def test_body_length_counts_bytes_not_characters():
    body = "상담원 연결".encode()
    data = b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body + b"Content-Type: x\n\n"
    msgs = list(Decoder().feed(data))
    assert msgs[0].body.decode() == "상담원 연결"
    assert msgs[1].content_type == "x"


def test_disconnect_notice_and_crlf_framing():
    data = (b"Content-Type: text/disconnect-notice\r\nControlled-Session-UUID: u\r\n"
            b"Content-Disposition: linger\r\nContent-Length: 0\r\n\r\n")
    (msg,) = list(Decoder().feed(data))
    assert msg.headers["Content-Disposition"] == "linger"


@pytest.mark.parametrize("garbage", [b"\x00\xff\xfenot esl\n\n", b"Content-Length: -3\n\n",
                                     b"Content-Length: 999999999999\n\n"])
def test_garbage_raises_protocol_error(garbage):
    with pytest.raises(ProtocolError):
        list(Decoder().feed(garbage))


def test_event_json_is_parsed():
    body = json.dumps({"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_fork::json", "_body": "{\"a\":1}",
                       "Content-Length": "7"}).encode()
    msg = b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body
    ev = parse_event(next(Decoder().feed(msg)))
    assert ev.subclass == "mod_audio_fork::json" and ev.json_body() == {"a": 1}


def test_encode_command_with_headers_and_body():
    raw = encode_command("sendmsg", {"call-command": "execute", "execute-app-name": "playback"}, body="a\nb")
    assert raw == b"sendmsg\ncall-command: execute\nexecute-app-name: playback\nContent-Length: 3\n\na\nb"
    with pytest.raises(ValueError):
        encode_command("api x\ny")
    with pytest.raises(ValueError):
        encode_command("sendmsg", {"execute-app-arg": "two\nlines"})
