"""vibevoice-streaming against a real loopback WebSocket server speaking the ASR-Streaming frame format."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from vv_servers import FakeStreamingAsr, start_streaming

from agent.engines.asr.base import AsrContext, AsrSegment
from agent.engines.asr.vibevoice_streaming import NAME, create
from agent.engines.errors import EngineError, EngineUnavailable


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (16000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def engine_for(*servers: FakeStreamingAsr, **extra):
    return create({"base_urls": [s.url for s in servers], "final_timeout_s": 5.0, **extra},
                  "worker.asr.engines.vibevoice-streaming")


def test_live_stream_yields_partials_then_the_final_result(streaming_server: FakeStreamingAsr) -> None:
    engine = engine_for(streaming_server)
    session = engine.open_stream(AsrContext(hotwords=("요금제", "로밍"), call_id="call-1"))
    partials = []
    reader = threading.Thread(target=lambda: partials.extend(session.partials(timeout=5)))
    reader.start()
    audio = tone(1.6, 8000)
    for start in range(0, audio.size, 160):  # 20 ms frames, as the fork delivers them
        session.feed(audio[start:start + 160], 8000)
    result = session.finish()
    reader.join(timeout=5)
    engine.close()

    assert streaming_server.configs == [{"context_info": "요금제, 로밍", "temperature": 0.0, "max_tokens": 256}]
    # Float32 at the server's 24 kHz, scaled to [-1, 1]: 1.6 s → 38400 samples (the resampler's tail flushed).
    assert streaming_server.samples[0] == pytest.approx(1.6 * 24000, abs=48)
    assert 0.3 < streaming_server.peaks[0] <= 1.0
    assert [p.text for p in partials] == ["말0", "말1", "말2", "말3"]
    assert partials[1].transcript == "말0 말1" and partials[0].speaker == 0
    assert result.engine == NAME
    assert result.text == "말0 말1 말2 말3"
    assert result.segments == (AsrSegment("말0 말1 말2 말3", 0.0, pytest.approx(1.6, abs=0.01), 0),)


def test_partials_by_callback_hold_no_thread_of_the_callers_pool(streaming_server: FakeStreamingAsr) -> None:
    engine = engine_for(streaming_server)
    session = engine.open_stream(AsrContext(call_id="call-1"))
    got: list[tuple[str, str]] = []
    audio = tone(1.6, 8000)
    session.feed(audio[:4000], 8000)
    session.on_partial(lambda p: got.append((p.text, threading.current_thread().name)))
    session.on_partial(lambda p: got.append((p.text, threading.current_thread().name)))  # idempotent
    for start in range(4000, audio.size, 160):
        session.feed(audio[start:start + 160], 8000)
    result = session.finish()
    engine.close()
    assert [t for t, _ in got] == ["말0", "말1", "말2", "말3"] and result.text == "말0 말1 말2 말3"
    # Delivered by the session's reader (or, for partials that came before registering, the registering
    # thread): never a thread the caller had to lend for the whole call.
    assert {n for _, n in got} <= {f"{NAME}-call-1", threading.current_thread().name}


def test_stream_is_sticky_per_call(streaming_server: FakeStreamingAsr) -> None:
    engine = engine_for(streaming_server)
    first = engine.open_stream(AsrContext(call_id="call-7"))
    assert engine.open_stream(AsrContext(call_id="call-7")) is first
    other = engine.open_stream(AsrContext(call_id="call-8"))
    assert other is not first
    first.feed(tone(0.2, 16000), 16000)
    first.finish()
    again = engine.open_stream(AsrContext(call_id="call-7"))  # the finished stream is replaced
    assert again is not first
    engine.end_call("call-7")
    assert again.closed
    engine.close()
    assert other.closed


def test_calls_stick_to_one_replica() -> None:
    fakes = [FakeStreamingAsr(), FakeStreamingAsr()]
    servers = [start_streaming(f) for f in fakes]
    try:
        engine = engine_for(*fakes)
        ids = [f"call-{i}" for i in range(20)]
        chosen = {i: engine.replica(i) for i in ids}
        assert all(engine.replica(i) == chosen[i] for i in ids)
        assert set(chosen.values()) == {f.url for f in fakes}  # both replicas get calls
        for call_id in ids[:4]:
            engine.transcribe(tone(0.3, 8000), 8000, AsrContext(call_id=call_id))
        expected = [sum(chosen[i] == f.url for i in ids[:4]) for f in fakes]
        assert [len(f.samples) for f in fakes] == expected
        engine.close()
    finally:
        for server, thread in servers:
            server.shutdown()
            thread.join(timeout=5)


def test_whole_utterance_transcribe(streaming_server: FakeStreamingAsr) -> None:
    engine = engine_for(streaming_server)
    result = engine.transcribe(tone(0.7, 16000), 16000, AsrContext(call_id="c"))
    engine.close()
    assert result.text == "말0 말1"
    assert streaming_server.configs[0]["context_info"] == ""


def test_server_error_becomes_engine_error(streaming_server: FakeStreamingAsr) -> None:
    streaming_server.fail_after_chunks = 1
    engine = engine_for(streaming_server)
    with pytest.raises(EngineError, match="out of memory") as info:
        engine.transcribe(tone(1.5, 8000), 8000, AsrContext())
    assert not info.value.retryable
    engine.close()


def test_probe_reads_the_rate_and_fails_without_a_server(streaming_server: FakeStreamingAsr) -> None:
    streaming_server.sample_rate = 16000
    assert engine_for(streaming_server).options.sample_rate == 16000
    with pytest.raises(EngineUnavailable, match="no ASR-Streaming server"):
        create({"base_url": "http://127.0.0.1:9", "connect_timeout_s": 0.2}, "k")


def test_unreachable_stream_is_a_retryable_error() -> None:
    engine = create({"base_url": "http://127.0.0.1:9", "probe": False, "connect_timeout_s": 0.3}, "k")
    with pytest.raises(EngineError) as info:
        engine.open_stream(AsrContext(call_id="x"))
    assert info.value.retryable
