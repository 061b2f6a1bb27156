"""mod_audio_fork framing: the exact bytes the worker sends, the metadata fields it keeps, and the reasons it
gives FreeSWITCH (and the log) when it refuses a frame."""

from __future__ import annotations

import json

import pytest

from agent.media import fork_protocol as proto


def test_speech_onset_goes_out_as_compact_json():
    # Every message is one WebSocket text frame that FreeSWITCH turns into a CUSTOM event body: compact, exact.
    assert proto.speech_onset(3, 1.23456) == '{"type":"json","event":"speech_onset","utterance":3,"at":1.235}'


def test_korean_text_goes_out_as_utf8_in_compact_json():
    wire = proto.turn_preview(2, "환불해 주세요", 0.5)
    assert wire == '{"type":"json","event":"turn_preview","utterance":2,"text":"환불해 주세요","at":0.5}'


def test_asr_wait_is_reported_apart_from_asr_time_when_asr_started_during_the_silence():
    data = json.loads(proto.transcript(1, "네", source="asr", engine="vosk", start=0, end=1, eos_wait_ms=240,
                                       asr_ms=310.2, asr_wait_ms=40.4))["data"]
    assert (data["asr_ms"], data["asr_wait_ms"]) == (310, 40)


def test_tenant_and_language_come_from_the_metadata():
    meta = proto.parse_metadata('{"call_id":"c","rate":8000,"tenant":"acme","lang":"en"}')
    assert (meta.tenant, meta.lang) == ("acme", "en")


@pytest.mark.parametrize("field", ["tenant", "lang"])
def test_a_non_string_tenant_or_language_is_refused(field):
    with pytest.raises(proto.ProtocolError, match=f"^metadata '{field}' must be a string, got 5$"):
        proto.parse_metadata(json.dumps({"call_id": "c", "rate": 8000, field: 5}))


def test_metadata_of_exactly_the_cap_is_accepted_and_one_byte_more_is_not():
    head = '{"call_id":"'
    tail = '","rate":16000}'
    exact = head + "a" * (proto.MAX_METADATA_BYTES - len(head) - len(tail)) + tail
    assert len(exact.encode()) == proto.MAX_METADATA_BYTES
    assert proto.parse_metadata(exact).rate == 16000
    with pytest.raises(proto.ProtocolError, match="longer than 8192 bytes"):
        proto.parse_metadata(exact.replace('"a', '"aa', 1))


@pytest.mark.parametrize("text, reason", [
    ('{"call_id":"a"}', "metadata lacks 'rate'; the sample rate cannot be known otherwise"),
    ('{"rate":8000}', "metadata lacks 'call_id' and the URL path carries none"),
    ('{"call_id":"a","rate":8000,"hotwords":[1]}', "metadata 'hotwords' must be a list of strings"),
    ('[]', "metadata must be a JSON object, got list"),
    ('"x"', "metadata must be a JSON object, got str"),
])
def test_the_refusal_reason_says_what_is_wrong(text, reason):
    # The reason goes back to FreeSWITCH in the error frame and into the worker's log.
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_metadata(text)
    assert str(info.value) == reason


def test_an_injection_without_text_is_refused_with_what_was_sent():
    with pytest.raises(proto.ProtocolError, match=r"^'callagent.inject' needs a string 'text', got 42$"):
        proto.parse_client_text('{"type":"callagent.inject","text":42}')


@pytest.mark.parametrize("size", [0, -2, 641])
def test_a_frame_size_that_is_not_whole_positive_samples_is_refused(size):
    with pytest.raises(ValueError, match=f"positive even byte count, got {size}$"):
        proto.FrameAssembler(size)


def test_a_whole_frame_after_a_partial_one_continues_the_stream():
    asm = proto.FrameAssembler(640)
    assert asm.feed(b"\x01") == []
    frame = bytes(range(256)) * 2 + bytes(128)
    out = asm.feed(frame)
    # The byte held back comes first: a 640-byte message is not a frame on its own while bytes are pending.
    assert out == [b"\x01" + frame[:639]]
    assert asm.pending == 1
    assert asm.feed(b"\x00" * 639) == [frame[639:] + b"\x00" * 639]
