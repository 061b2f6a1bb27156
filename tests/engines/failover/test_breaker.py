"""Engines that fail while running: the breaker's states, and TTS/ASR that carry on with the CPU engine within
the same sentence or utterance, then go back to the model server once it answers again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.config import TtsConfig, WorkerConfig
from agent.engines import breaker as br
from agent.engines.asr import registry as asr_registry
from agent.engines.asr.base import AsrContext, AsrResult
from agent.engines.asr.fake import FakeAsr
from agent.engines.errors import EngineError
from agent.engines.tts import registry as tts_registry
from agent.engines.tts.base import AudioChunk
from agent.engines.tts.fake import FakeTts
from agent.engines.tts.remote import RemoteSpeaker, RemoteTts
from agent.engines.tts.server import TtsWorker, make_server
from agent.engines.tts.speaker import Speaker
from agent.engines.tts.spool import Spool

REPLY = "주문을 확인했습니다. 내일 도착할 예정입니다. 더 궁금하신 점 있으세요?"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Server:
    """A model server that can be killed and revived; `mid_stream` kills it after the first chunk."""

    name = "gpu"

    def __init__(self) -> None:
        self.alive = True
        self.mid_stream = False
        self.texts: list[str] = []

    def synthesize(self, text: str, voice: str) -> Iterator[AudioChunk]:
        if not self.alive:
            raise EngineError(self.name, "connection refused", retryable=True)
        self.texts.append(text)
        yield AudioChunk(np.full(1600, 1000, np.int16), 16000)
        if self.mid_stream:
            self.alive = False
            raise EngineError(self.name, "server died mid-sentence", retryable=True)
        yield AudioChunk(np.full(1600, 1000, np.int16), 16000)

    def close(self) -> None:
        pass


def test_breaker_opens_waits_tries_once_then_closes() -> None:
    clock = Clock()
    b = br.CircuitBreaker("x", failures_to_open=2, reset_after_s=10, clock=clock)
    assert b.allow()
    b.failure()
    assert b.state == br.CLOSED and b.allow()
    b.failure()
    assert b.state == br.OPEN and b.opened == 1 and not b.allow()
    clock.now = 9.9
    assert not b.allow()
    clock.now = 10.0
    assert b.allow() and b.state == br.HALF_OPEN
    assert not b.allow()  # one trial at a time
    b.failure()
    assert b.state == br.OPEN and not b.allow()
    clock.now = 20.0
    assert b.allow()
    b.abandon()  # the trial's caller hung up: another may try
    assert b.allow()
    b.success()
    assert b.state == br.CLOSED and b.failures == 0 and b.allow()
    with pytest.raises(ValueError):
        br.CircuitBreaker("y", failures_to_open=0)


def _speaker(tmp_path: Path, server: Server, fallback: FakeTts, clock: Clock) -> tuple[Speaker, br.FailoverTts]:
    engine = br.FailoverTts(server, lambda: fallback, br.CircuitBreaker("tts gpu", reset_after_s=15, clock=clock))
    return Speaker(engine, Spool(tmp_path), voice="ko", max_chunk_chars=60), engine


def test_a_tts_server_killed_mid_reply_costs_no_sentence(tmp_path: Path) -> None:
    clock, server, fallback = Clock(), Server(), FakeTts()
    speaker, engine = _speaker(tmp_path, server, fallback, clock)
    first = speaker.speak("call-1", "u1", REPLY, 8000)
    one = next(first)
    assert server.texts == ["주문을 확인했습니다."] and one.text == "주문을 확인했습니다."
    server.alive = False  # killed between two sentences of the same reply
    rest = list(first)
    assert [c.text for c in rest] == ["내일 도착할 예정입니다.", "더 궁금하신 점 있으세요?"]
    assert fallback.calls == ["내일 도착할 예정입니다.", "더 궁금하신 점 있으세요?"]
    assert all(sf.info(str(c.path)).duration > 0.5 for c in rest)  # real audio, not silence
    assert engine.breaker.state == br.OPEN and engine.served_by_fallback == 2
    # While open the dead server is not even asked (no timeout per sentence).
    server.alive = True
    list(speaker.speak("call-1", "u2", "네.", 8000))
    assert server.texts == ["주문을 확인했습니다."] and fallback.calls[-1] == "네."
    clock.now += 15  # recovered: the next sentence goes back to the server
    list(speaker.speak("call-1", "u3", "감사합니다.", 8000))
    assert server.texts[-1] == "감사합니다." and engine.breaker.state == br.CLOSED


def test_a_sentence_cut_part_way_is_not_repeated_and_the_next_one_falls_back(tmp_path: Path) -> None:
    clock, server, fallback = Clock(), Server(), FakeTts()
    server.mid_stream = True
    speaker, _ = _speaker(tmp_path, server, fallback, clock)
    chunks = list(speaker.speak("call-1", "u1", "주문을 확인했습니다. 내일 도착할 예정입니다.", 8000))
    assert fallback.calls == ["내일 도착할 예정입니다."]
    assert [c.text for c in chunks] == ["주문을 확인했습니다.", "내일 도착할 예정입니다."]


def test_failover_tts_passes_call_id_to_a_pooled_engine() -> None:
    seen: list[str] = []

    class Pooled(Server):
        def synthesize(self, text: str, voice: str, *, call_id: str = "") -> Iterator[AudioChunk]:  # type: ignore[override]
            seen.append(call_id)
            return super().synthesize(text, voice)

    engine = br.FailoverTts(Pooled(), FakeTts, br.CircuitBreaker("p"))
    list(engine.synthesize("네", "ko", call_id="call-7"))
    assert seen == ["call-7"]


def test_failover_asr_takes_the_same_utterance_and_keeps_the_primarys_other_features() -> None:
    clock = Clock()

    class Remote(FakeAsr):
        alive = True

        def transcribe(self, pcm, sample_rate, context) -> AsrResult:  # type: ignore[no-untyped-def]
            if not self.alive:
                raise EngineError("vibevoice-vllm", "connection refused", retryable=True)
            return super().transcribe(pcm, sample_rate, context)

        def open_stream(self, context: AsrContext) -> str:
            return "stream"

    remote, cpu = Remote(text="원격"), FakeAsr(text="로컬")
    asr = br.FailoverAsr(remote, lambda: cpu, br.CircuitBreaker("asr", reset_after_s=5, clock=clock))
    pcm = np.zeros(1600, np.int16)
    assert asr.transcribe(pcm, 16000, AsrContext()).text == "원격"
    remote.alive = False
    assert asr.transcribe(pcm, 16000, AsrContext()).text == "로컬"  # the utterance that failed
    assert asr.transcribe(pcm, 16000, AsrContext()).text == "로컬" and len(remote.calls) == 1
    remote.alive = True
    clock.now = 5
    assert asr.transcribe(pcm, 16000, AsrContext()).text == "원격"
    assert asr.open_stream(AsrContext()) == "stream" and asr.name == "fake"


def test_remote_tts_worker_killed_mid_call_is_replaced_by_the_local_engine(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    server = make_server(TtsWorker(FakeTts(), spool_dir, max_concurrent=2), ("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    clock, local = Clock(), FakeTts(ms_per_char=30)
    client = RemoteTts(f"http://127.0.0.1:{server.server_address[1]}")
    speaker = RemoteSpeaker(client, Spool(spool_dir), voice="ko", max_chunk_chars=60, fallback=lambda: local,
                            breaker=br.CircuitBreaker("tts remote", reset_after_s=30, clock=clock))
    try:
        stream = speaker.speak("call1", "r1", REPLY, 8000)
        first = next(stream)
        assert first.text == "주문을 확인했습니다." and local.calls == []
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        rest = [c for c in stream if c.text]
        assert [c.text for c in rest] == ["내일 도착할 예정입니다.", "더 궁금하신 점 있으세요?"]
        assert local.calls == [c.tts_text for c in rest]
        for c in rest:
            assert c.path.parent == spool_dir / "call1" and sf.info(str(c.path)).samplerate == 8000
        assert speaker.breaker.state == br.OPEN
    finally:
        client.close()


def test_registries_wrap_gpu_engines_but_not_the_cpu_or_test_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not isinstance(tts_registry.create_tts(TtsConfig(engine="fake")), br.FailoverTts)
    assert not isinstance(asr_registry.create_asr(WorkerConfig(asr_engine="fake")), br.FailoverAsr)
    monkeypatch.setitem(tts_registry.ENGINES, "gpu", "agent.engines.tts.fake")
    monkeypatch.setattr(tts_registry, "NO_FAILOVER", ("espeak",))
    wrapped = tts_registry.create_tts(TtsConfig(engine="gpu"))
    assert isinstance(wrapped, br.FailoverTts) and "tts fake" in br.BREAKERS
    monkeypatch.setattr(asr_registry, "NO_FAILOVER", ("vosk",))
    assert isinstance(asr_registry.create_asr(WorkerConfig(asr_engine="fake")), br.FailoverAsr)
