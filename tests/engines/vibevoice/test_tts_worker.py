"""The TTS worker over real loopback HTTP, driven by its real client (remote.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.config import TtsConfig
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts.base import AudioChunk
from agent.engines.tts.remote import RemoteTts, from_config
from agent.engines.tts.server import TtsWorker, listen_address, make_server, parse_speak


class SteppedEngine:
    """24 kHz 133 ms chunks like VibeVoice-Realtime; after the first chunk it waits for `go` (so a test can
    prove the first WAV reached the client while synthesis was still running)."""

    name = "stepped"

    def __init__(self, chunks: int = 8, *, fail_at: int | None = None, retryable: bool = True):
        self.chunks, self.fail_at, self.retryable = chunks, fail_at, retryable
        self.go = threading.Event()
        self.closed_early = threading.Event()
        self.calls: list[tuple[str, str, str]] = []

    def synthesize(self, text: str, voice: str, *, call_id: str = "") -> Iterator[AudioChunk]:
        self.calls.append((text, voice, call_id))
        t = np.arange(3200) / 24000
        done = False
        try:
            for i in range(self.chunks):
                if i == self.fail_at:
                    raise EngineError(self.name, "model crashed", retryable=self.retryable)
                if i == 1 and not self.go.wait(5):
                    raise EngineError(self.name, "test never released the engine", retryable=False)
                yield AudioChunk((12000 * np.sin(2 * np.pi * 300 * (t + i * 3200 / 24000))).astype(np.int16), 24000)
            done = True
        finally:
            if not done:
                self.closed_early.set()

    def close(self) -> None:
        pass


@pytest.fixture
def worker_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, SteppedEngine, Path]]:
    engine = getattr(request, "param", None) or SteppedEngine()
    spool = tmp_path / "spool"
    server = make_server(TtsWorker(engine, spool, max_concurrent=2), ("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", engine, spool
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_first_wav_arrives_while_synthesis_continues(worker_url) -> None:
    url, engine, spool = worker_url
    client = RemoteTts(url, chunk_timeout_s=5)
    stream = client.speak("call-1", "utt-1", "네, 확인해 드릴게요.", "kr-Spk0_woman", 8000)
    first = next(stream)
    assert first.index == 0 and not engine.go.is_set()  # synthesis is still waiting on us
    engine.go.set()
    rest = list(stream)
    client.close()

    chunks = [first, *rest]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert engine.calls == [("네, 확인해 드릴게요.", "kr-Spk0_woman", "call-1")]
    total = 0.0
    for c in chunks:
        path = Path(c.path)
        assert path.parent == spool / "call-1" and path.name == f"utt-1-{c.index:03d}.wav"
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert info.duration == pytest.approx(c.duration_s, abs=1e-3)
        total += info.duration
    assert total == pytest.approx(8 * 3200 / 24000, abs=0.005)  # nothing lost in resampling or merging
    assert all(c.duration_s >= 0.3 for c in chunks[1:-1])  # later chunks merged to >= 300 ms
    assert [c.synth_ms for c in chunks] == sorted(c.synth_ms for c in chunks)
    assert not list(spool.rglob(".*.tmp"))


def test_healthz_and_config_listen_address(worker_url) -> None:
    url, _, _ = worker_url
    client = RemoteTts(url)
    assert client.health() == {"ok": True, "engine": "stepped", "active": 0, "max_concurrent": 2}
    client.close()
    with pytest.raises(EngineUnavailable):
        RemoteTts("http://127.0.0.1:9", connect_timeout_s=0.2).health()
    assert listen_address(TtsConfig(worker_url="http://10.0.0.5:9100")) == ("10.0.0.5", 9100)
    assert listen_address(TtsConfig()) == ("127.0.0.1", 8095)
    assert from_config(TtsConfig(worker_url=url)).base_url == url


def test_hanging_up_mid_utterance_stops_the_engine(worker_url) -> None:
    url, engine, _ = worker_url
    client = RemoteTts(url)
    stream = client.speak("call-2", "utt-9", "긴 안내입니다.", "v", 16000)
    next(stream)
    stream.close()  # barge-in: the controller stops listening
    engine.go.set()
    assert engine.closed_early.wait(5)
    client.close()


@pytest.mark.parametrize("worker_url", [SteppedEngine(fail_at=0, retryable=True)], indirect=True)
def test_engine_failure_before_audio_is_a_retryable_http_error(worker_url) -> None:
    url, _, _ = worker_url
    client = RemoteTts(url)
    with pytest.raises(EngineError, match="HTTP 503.*model crashed") as info:
        list(client.speak("c", "u", "안녕하세요", "v"))
    assert info.value.retryable
    client.close()


@pytest.mark.parametrize("worker_url", [SteppedEngine(fail_at=3, retryable=False)], indirect=True)
def test_engine_failure_mid_stream_arrives_as_an_error_line(worker_url) -> None:
    url, engine, _ = worker_url
    engine.go.set()
    client = RemoteTts(url)
    got = []
    with pytest.raises(EngineError, match="model crashed") as info:
        for chunk in client.speak("c", "u", "안녕하세요", "v"):
            got.append(chunk)
    assert got and not info.value.retryable
    client.close()


def test_bad_requests_are_rejected(worker_url) -> None:
    url, engine, spool = worker_url
    client = RemoteTts(url)
    for call_id, utt_id, text, rate in [("../etc", "u", "네", 8000), ("c", "a/b", "네", 8000),
                                        ("c", "u", "", 8000), ("c", "u", "네", 11025)]:
        with pytest.raises(EngineError, match="HTTP 400") as info:
            list(client.speak(call_id, utt_id, text, "v", rate))
        assert not info.value.retryable
    client.close()
    assert engine.calls == [] and not spool.exists()


def test_busy_worker_answers_503(worker_url) -> None:
    url, engine, _ = worker_url
    client = RemoteTts(url)
    held = [client.speak(f"c{i}", "u", "네", "v") for i in range(2)]
    for stream in held:
        next(stream)  # two utterances in flight = max_concurrent
    with pytest.raises(EngineError, match="HTTP 503: busy") as info:
        list(client.speak("c3", "u", "네", "v"))
    assert info.value.retryable
    engine.go.set()
    for stream in held:
        list(stream)
    client.close()


def test_slow_worker_times_out_on_the_client(worker_url) -> None:
    url, engine, _ = worker_url
    client = RemoteTts(url, chunk_timeout_s=0.3)
    stream = client.speak("c", "u", "네", "v")
    next(stream)
    started = time.monotonic()
    with pytest.raises(EngineError, match="timed out") as info:
        next(stream)
    assert info.value.retryable and time.monotonic() - started < 2
    engine.go.set()
    client.close()


def test_synthesize_reads_the_spooled_audio_back(worker_url) -> None:
    url, engine, _ = worker_url
    engine.go.set()
    client = RemoteTts(url)
    chunks = list(client.synthesize("네", "v", call_id="c", rate=16000))
    client.close()
    assert all(c.sample_rate == 16000 and c.pcm.dtype == np.int16 for c in chunks)
    assert sum(c.duration_s for c in chunks) == pytest.approx(8 * 3200 / 24000, abs=0.005)


def test_parse_speak_defaults() -> None:
    req = parse_speak(b'{"call_id": "c-1", "utt_id": "u.2", "text": "hi"}')
    assert (req.voice, req.rate) == ("", 8000)


def test_remote_speaker_splits_sentences_and_credits_each_to_its_first_file(tmp_path: Path):
    """The controller's side of a remote TTS: one request per sentence, paths straight from the shared spool."""
    from agent.engines.tts.fake import FakeTts
    from agent.engines.tts.remote import RemoteSpeaker
    from agent.engines.tts.spool import Spool

    spool_dir = tmp_path / "spool"
    server = make_server(TtsWorker(FakeTts(), spool_dir, max_concurrent=2), ("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = RemoteTts(f"http://127.0.0.1:{server.server_address[1]}")
        speaker = RemoteSpeaker(client, Spool(spool_dir), voice="ko", max_chunk_chars=60)
        chunks = list(speaker.speak("call1", "r1", "주문을 확인했습니다. 내일 도착합니다.", 8000))
        assert [c.text for c in chunks if c.text] == ["주문을 확인했습니다.", "내일 도착합니다."]
        assert [c.index for c in chunks] == list(range(len(chunks)))
        for c in chunks:
            assert c.path.parent == spool_dir / "call1" and sf.info(str(c.path)).samplerate == 8000
        client.close()
    finally:
        server.shutdown()
