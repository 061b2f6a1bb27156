"""mod_audio_fork framing: metadata validation, byte-stream reassembly, outbound message shapes."""

from __future__ import annotations

import json
import random

import pytest

from agent.engines.asr.base import AsrSegment
from agent.media import fork_protocol as proto


def test_metadata_as_the_controller_sends_it():
    meta = proto.parse_metadata(
        '{"call_id":"abc-1","rate":16000,"industry":"ecommerce","tenant":"default","lang":"ko"}')
    assert meta == proto.ForkMetadata(call_id="abc-1", rate=16000, industry="ecommerce", tenant="default",
                                      lang="ko")


def test_metadata_defaults_and_call_id_from_the_url_path():
    meta = proto.parse_metadata('{"rate":8000}', fallback_call_id="uuid-from-path")
    assert (meta.call_id, meta.rate, meta.industry, meta.tenant, meta.lang) == (
        "uuid-from-path", 8000, "", "default", "ko")
    meta = proto.parse_metadata('{"rate":8000,"hotwords":["로켓배송"],"extra":1}', fallback_call_id="x")
    assert meta.hotwords == ("로켓배송",)
    assert (meta.token, meta.channels) == ("", 1)


def test_metadata_token_hotwords_and_stereo():
    meta = proto.parse_metadata('{"call_id":"c","rate":8000,"token":"ab12","hotwords":["반품","환불"],"channels":2}')
    assert (meta.token, meta.hotwords, meta.channels) == ("ab12", ("반품", "환불"), 2)


@pytest.mark.parametrize("text, needle", [
    ("not json", "not JSON"),
    ("[1,2]", "JSON object"),
    ('{"call_id":"a"}', "lacks 'rate'"),
    ('{"call_id":"a","rate":"16000"}', "must be an integer"),
    ('{"call_id":"a","rate":true}', "must be an integer"),
    ('{"call_id":"a","rate":44100}', "unsupported sample rate 44100"),
    ('{"call_id":"a","rate":24000}', "only 8000 and 16000"),
    ('{"rate":16000}', "call_id"),
    ('{"call_id":7,"rate":16000}', "'call_id' must be a string"),
    ('{"call_id":"a","rate":16000,"industry":["x"]}', "'industry' must be a string"),
    ('{"call_id":"a","rate":16000,"hotwords":"x"}', "hotwords"),
    ('{"call_id":"' + "a" * 9000 + '","rate":16000}', "longer than 8192"),
    ('{"call_id":"a","rate":16000,"channels":3}', "'channels' must be 1"),
    ('{"call_id":"a","rate":16000,"channels":true}', "'channels' must be 1"),
    ('{"call_id":"a","rate":16000,"token":12}', "'token' must be a string"),
])
def test_bad_metadata_is_rejected_with_a_reason(text, needle):
    with pytest.raises(proto.ProtocolError, match=needle):
        proto.parse_metadata(text)


def test_odd_length_messages_reassemble_byte_exactly():
    rng = random.Random(7)
    stream = bytes(rng.randrange(256) for _ in range(640 * 60 + 17))
    asm = proto.FrameAssembler(640)
    frames, pos = [], 0
    while pos < len(stream):
        n = rng.choice([1, 3, 319, 639, 641, 1281, 2 * 640 + 1])
        frames += asm.feed(stream[pos:pos + n])
        pos += n
    assert all(len(f) == 640 for f in frames)
    assert b"".join(frames) == stream[:640 * 60]
    assert asm.pending == 17


def test_merged_packets_split_into_frames_and_exact_frames_pass_through():
    asm = proto.FrameAssembler(320)
    a, b, c = b"a" * 320, b"b" * 320, b"c" * 320
    assert asm.feed(a + b) == [a, b]
    assert asm.feed(c) == [c]
    assert asm.feed(b"") == [] and asm.pending == 0
    assert asm.feed(a[:100]) == [] and asm.feed(a[100:] + b[:5]) == [a]
    assert asm.pending == 5


def test_frame_size_must_be_whole_samples():
    with pytest.raises(ValueError):
        proto.FrameAssembler(641)


def test_outbound_messages_have_the_agreed_shape():
    assert json.loads(proto.speech_started(3, 1.23456)) == {
        "type": "json", "event": "speech_started", "utterance": 3, "at": 1.235}
    assert json.loads(proto.speech_ended(3, 1.2, 4.5)) == {
        "type": "json", "event": "speech_ended", "utterance": 3, "start": 1.2, "end": 4.5}
    eot = {"reason": "sentence_end", "silence_ms": 240, "sentence_end": True, "smart_turn": 0.97}
    assert proto.speech_ended(3, 1.2, 4.5, eos_wait_ms=240, eot=eot, text="어딨 나", source="text-injected") == (
        '{"type":"json","event":"speech_ended","utterance":3,"start":1.2,"end":4.5,"eos_wait_ms":240,'
        '"eot":{"reason":"sentence_end","silence_ms":240,"sentence_end":true,"smart_turn":0.97},'
        '"text":"어딨 나","source":"text-injected"}')  # UTF-8 as is: the words are read back by FreeSWITCH
    assert json.loads(proto.speech_ended(3, 1.2, 4.5, text="네"))["source"] == "asr"
    assert json.loads(proto.asr_error(3, "timeout", True)) == {
        "type": "json", "event": "asr_error", "utterance": 3, "reason": "timeout", "retryable": True}
    assert json.loads(proto.error("bad rate")) == {"type": "error", "data": {"reason": "bad rate"}}
    text = proto.transcript(3, "배송 조회", source="asr", engine="vosk", start=1.2, end=4.5, eos_wait_ms=800.4,
                            asr_ms=123.6, segments=[AsrSegment("배송", 1.3, 1.8), AsrSegment("조회", 1.9, 2.4)])
    assert "배송" in text  # UTF-8, not \u escapes: shorter frames, readable CUSTOM event bodies
    assert json.loads(text) == {"type": "transcription", "data": {
        "event": "transcript", "utterance": 3, "final": True, "text": "배송 조회", "source": "asr",
        "engine": "vosk", "start": 1.2, "end": 4.5, "eos_wait_ms": 800, "asr_ms": 124,
        "asr_wait_ms": 124, "segments": [{"text": "배송", "start": 1.3, "end": 1.8, "speaker": None},
                     {"text": "조회", "start": 1.9, "end": 2.4, "speaker": None}]}}
    partial = json.loads(proto.transcript(4, "", source="asr", engine="x", start=0, end=0, eos_wait_ms=0,
                                          asr_ms=0, final=False))
    assert partial["data"]["final"] is False and partial["data"]["text"] == ""


def test_turn_taking_events_have_the_agreed_shape():
    assert json.loads(proto.speech_dropped(2, 1.5, 180)) == {
        "type": "json", "event": "speech_dropped", "utterance": 2, "at": 1.5, "voiced_ms": 180}
    assert json.loads(proto.speech_paused(2, 1.5, 900)) == {
        "type": "json", "event": "speech_paused", "utterance": 2, "at": 1.5, "voiced_ms": 900}
    assert json.loads(proto.speech_continuing(2, 1.5, 500)) == {
        "type": "json", "event": "speech_continuing", "utterance": 2, "at": 1.5, "voiced_ms": 500}
    assert json.loads(proto.turn_preview(2, "네 맞아요", 1.5)) == {
        "type": "json", "event": "turn_preview", "utterance": 2, "text": "네 맞아요", "at": 1.5}
    assert json.loads(proto.turn_resumed(2, 1.5)) == {"type": "json", "event": "turn_resumed", "utterance": 2,
                                                      "at": 1.5}
    assert json.loads(proto.heartbeat(7, 7020, 7.02)) == {"type": "json", "event": "heartbeat", "seq": 7,
                                                          "audio_ms": 7020, "at": 7.02}
    eot = {"reason": "sentence_end", "silence_ms": 240, "sentence_end": True, "smart_turn": 0.93}
    final = json.loads(proto.transcript(2, "네", source="asr", engine="vosk", start=1, end=2, eos_wait_ms=240,
                                        asr_ms=10, eot=eot))
    assert final["data"]["eot"] == eot


def test_client_text_frames():
    assert proto.parse_client_text('{"type":"callagent.inject","text":"환불해 주세요"}') == proto.Inject(
        "환불해 주세요")
    assert proto.parse_client_text('{"final":true}') is None
    assert proto.parse_client_text('{"event":"dtmf","dtmf":"5"}') is None
    assert proto.parse_client_text("plain words") is None
    with pytest.raises(proto.ProtocolError):
        proto.parse_client_text('{"type":"callagent.inject"}')
