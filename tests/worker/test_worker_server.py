"""The audio-fork worker over real loopback WebSockets; the test plays FreeSWITCH's side (freeswitch.md §3, §9)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent.config import Config, VadConfig, WorkerConfig
from agent.engines.asr.fake import FakeAsr
from agent.media.resample import resample
from agent.worker import server as worker_server
from agent.worker.server import WorkerThread, serve

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
CLIP = SPEECH_DIR / "ko/picovoice/leopard_test_ko.wav"  # speech from ~0.7 s to ~3.5 s
SUBPROTOCOL = "audio.drachtio.org"
WAIT_S = 20.0


def make_cfg(tmp_path: Path, **worker: object) -> Config:
    (tmp_path / "ecommerce.yaml").write_text(
        "industry: ecommerce\nterms: [로켓배송, 반품]\naliases: {로켓배송: [로켓 배송]}\n", encoding="utf-8")
    base = WorkerConfig(listen=("127.0.0.1", 0), hotwords_dir=str(tmp_path))
    return Config(worker=dataclasses.replace(base, **worker))


@pytest.fixture(scope="module")
def speech16k() -> bytes:
    if not CLIP.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    import soundfile as sf

    audio, rate = sf.read(CLIP, dtype="int16")
    assert rate == 16000
    return audio.tobytes()


def frames(pcm: bytes, rate: int, silence_s: float = 1.2) -> list[bytes]:
    """20 ms L16 frames of `pcm` followed by `silence_s` of digital silence, as mod_audio_fork sends them."""
    n = rate // 50 * 2
    data = pcm + bytes(int(rate * silence_s) * 2)
    return [data[i:i + n] for i in range(0, len(data), n)]


def meta(rate: int = 16000, **extra: object) -> str:
    return json.dumps({"call_id": "call-1", "rate": rate, "industry": "ecommerce", "tenant": "default",
                       "lang": "ko", **extra}, separators=(",", ":"))


async def fork_call(port: int, metadata: str | bytes | None, chunks: Iterable[bytes | str], *,
                    finals: int = 1, subprotocols: list[str] | None = None) -> tuple[list[dict], int | None, object]:
    """Sends metadata then chunks with no real-time pacing; collects JSON until `finals` transcripts or
    asr_errors arrived or the server closed. Returns (messages, close code, negotiated subprotocol)."""
    offered = [SUBPROTOCOL] if subprotocols is None else subprotocols
    async with connect(f"ws://127.0.0.1:{port}/call-1", subprotocols=offered or None) as ws:
        if metadata is not None:
            await ws.send(metadata)
        for chunk in chunks:
            await ws.send(chunk)
        messages: list[dict] = []
        try:
            async with asyncio.timeout(WAIT_S):
                while sum(m.get("type") == "transcription" or m.get("event") == "asr_error"
                          for m in messages) < finals:
                    messages.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            pass
        code = ws.close_code
        return messages, code, ws.subprotocol


# Advisory events (turn-taking hints, liveness) that these tests of the speech path do not count.
ADVISORY = {"speech_paused", "speech_continuing", "turn_preview", "turn_resumed", "heartbeat", "speech_dropped"}


def by_kind(messages: list[dict], *, onsets: bool = False) -> list[str]:
    kinds = [m.get("event") or m["data"].get("event") for m in messages]
    kinds = [k for k in kinds if k not in ADVISORY]
    return kinds if onsets else [k for k in kinds if k != "speech_onset"]


@pytest.fixture
def worker_for(tmp_path):
    started: list[WorkerThread] = []

    def start(engine: FakeAsr | None = None, **worker: object) -> WorkerThread:
        w = WorkerThread(make_cfg(tmp_path, **worker), engine or FakeAsr(text="배송 조회해 주세요")).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def test_korean_speech_gives_started_ended_and_a_final_transcript(worker_for, speech16k):
    engine = FakeAsr(text="배송 조회해 주세요", delay_s=0.05)
    w = worker_for(engine)
    messages, _, sub = asyncio.run(fork_call(w.port, meta(), frames(speech16k, 16000)))
    assert sub == SUBPROTOCOL
    assert by_kind(messages, onsets=True) == ["speech_onset", "speech_started", "speech_ended", "transcript"]
    onset, started, ended, final = [m for m in messages if (m.get("event") or m["data"]["event"]) not in ADVISORY]
    assert onset == {"type": "json", "event": "speech_onset", "utterance": 1, "at": started["at"]}
    assert started == {"type": "json", "event": "speech_started", "utterance": 1, "at": started["at"]}
    assert 0.3 < started["at"] < 1.0
    assert ended["start"] == started["at"] and 3.0 < ended["end"] < 3.9
    data = final["data"]
    assert final["type"] == "transcription"
    assert set(data) == {"event", "utterance", "final", "text", "source", "engine", "start", "end",
                         "eos_wait_ms", "asr_ms", "asr_wait_ms", "segments", "eot"}
    assert data["utterance"] == 1 and data["final"] is True
    assert (data["text"], data["source"], data["engine"]) == ("배송 조회해 주세요", "asr", "fake")
    assert (data["start"], data["end"]) == (ended["start"], ended["end"])
    # The transcript ends a Korean sentence (…요): the turn ends after sentence_end_ms of silence.
    assert data["eot"]["reason"] == "sentence_end" and data["eos_wait_ms"] == VadConfig().sentence_end_ms
    assert data["asr_ms"] >= 50
    # ASR ran speculatively during the silence, so at the end of speech the transcript was (nearly) ready.
    assert data["asr_wait_ms"] <= data["asr_ms"] and w.stats()["speculative_used"] == 1
    [seg] = data["segments"]
    # Segment times are stream seconds: the utterance audio starts 200 ms (prefix pad) before the speech.
    assert seg["start"] == pytest.approx(ended["start"] - 0.2, abs=0.001) and seg["speaker"] is None
    [call] = engine.calls
    assert call.sample_rate == 16000
    assert call.samples / 16000 == pytest.approx(ended["end"] - ended["start"] + 0.4, abs=0.03)
    assert call.context.call_id == "call-1" and call.context.language == "ko"
    assert call.context.hotwords == ("로켓배송", "반품", "로켓 배송")
    stats = w.stats()
    assert stats["utterances"] == 1 and stats["asr_calls"] == 1 and stats["asr_ms_sum"] >= 50
    sent = len(speech16k) + int(16000 * 1.2) * 2
    assert stats["bytes"] == sent and stats["frames"] == sent // 640


def test_8k_stream_is_segmented_at_8k(worker_for, speech16k):
    engine = FakeAsr(text="네")
    w = worker_for(engine)
    pcm8 = resample(np.frombuffer(speech16k, np.int16), 16000, 8000).tobytes()
    messages, _, _ = asyncio.run(fork_call(w.port, meta(8000), frames(pcm8, 8000)))
    assert by_kind(messages) == ["speech_started", "speech_ended", "transcript"]
    ended = next(m for m in messages if m.get("event") == "speech_ended")
    assert 3.0 < ended["end"] < 3.9  # stream seconds = samples / 8000
    assert engine.calls[0].sample_rate == 8000


def test_odd_length_and_merged_frames_give_the_same_result(worker_for, speech16k):
    engine = FakeAsr(text="네")
    w = worker_for(engine)
    regular, _, _ = asyncio.run(fork_call(w.port, meta(), frames(speech16k, 16000)))
    data = b"".join(frames(speech16k, 16000))
    rng, chunks, pos = random.Random(3), [], 0
    while pos < len(data):
        n = rng.choice([639, 641, 1281, 1, 1919])
        chunks.append(data[pos:pos + n])
        pos += n
    odd, _, _ = asyncio.run(fork_call(w.port, meta(), chunks))
    assert [m.get("event") for m in odd] == [m.get("event") for m in regular]
    assert odd[1] == regular[1]  # byte-exact reassembly → identical VAD decisions and times
    assert engine.calls[0].samples == engine.calls[1].samples
    assert w.stats()["odd_frames"] > 0


@pytest.mark.parametrize("metadata, needle", [
    (meta(44100), "unsupported sample rate 44100"),
    ('{"call_id":"x"}', "lacks 'rate'"),
    ("hello", "not JSON"),
    (bytes(640), "metadata"),
])
def test_bad_metadata_gets_an_error_and_close_1008(worker_for, metadata, needle):
    w = worker_for()
    messages, code, _ = asyncio.run(fork_call(w.port, metadata, []))
    assert code == 1008
    [error] = messages
    assert error["type"] == "error" and needle in error["data"]["reason"]
    assert w.stats()["rejected"] == 1


def test_no_metadata_in_time_is_rejected(worker_for, monkeypatch):
    monkeypatch.setattr(worker_server, "METADATA_TIMEOUT_S", 0.3)
    w = worker_for()
    messages, code, _ = asyncio.run(fork_call(w.port, None, []))
    assert code == 1008 and "no metadata" in messages[0]["data"]["reason"]


def test_text_injection_is_honoured_only_when_allowed(worker_for, speech16k):
    inject = json.dumps({"type": "callagent.inject", "text": "환불하고 싶어요"})
    engine = FakeAsr(text="from asr")
    w = worker_for(engine, allow_text_injection=True)
    messages, _, _ = asyncio.run(fork_call(w.port, meta(), [inject, *frames(speech16k, 16000)]))
    data = messages[-1]["data"]
    assert (data["text"], data["source"], data["engine"], data["asr_ms"]) == (
        "환불하고 싶어요", "text-injected", "text-injected", 0)
    assert data["eos_wait_ms"] == VadConfig().sentence_end_ms and engine.calls == []
    # Only the next utterance: a second one goes to ASR again.
    two = frames(speech16k, 16000) * 2
    messages, _, _ = asyncio.run(fork_call(w.port, meta(), [inject, *two], finals=2))
    assert [m["data"]["source"] for m in messages if m["type"] == "transcription"] == ["text-injected", "asr"]

    refusing = worker_for(FakeAsr(text="from asr"))
    messages, _, _ = asyncio.run(fork_call(refusing.port, meta(), [inject, *frames(speech16k, 16000)]))
    data = messages[-1]["data"]
    assert (data["text"], data["source"], data["engine"]) == ("from asr", "asr", "fake")


def test_other_text_frames_are_ignored(worker_for, speech16k):
    w = worker_for()
    chatter = ['{"event":"dtmf","dtmf":"5"}', "not json at all", '{"type":"callagent.inject"}']
    audio = frames(speech16k, 16000)
    messages, _, _ = asyncio.run(fork_call(w.port, meta(), [*chatter, *audio, '{"final":true}']))
    assert by_kind(messages) == ["speech_started", "speech_ended", "transcript"]


@pytest.mark.parametrize("retryable", [False, True])
def test_engine_failure_is_reported_as_asr_error(worker_for, speech16k, retryable):
    w = worker_for(FakeAsr(fail="model exploded", retryable=retryable))
    messages, _, _ = asyncio.run(fork_call(w.port, meta(), frames(speech16k, 16000)))
    assert by_kind(messages) == ["speech_started", "speech_ended", "asr_error"]
    error = messages[-1]
    assert error["utterance"] == 1 and "model exploded" in error["reason"]
    assert error["retryable"] is retryable
    assert w.stats()["asr_errors"] == 1


def test_engine_timeout_is_a_retryable_asr_error(worker_for, speech16k):
    # The engine would answer after 8 s; the client waits up to WAIT_S (20 s) for a final, so only the worker's
    # 0.3 s timeout can produce the asr_error (no wall-clock comparison: the machine may be loaded).
    w = worker_for(FakeAsr(text="late", delay_s=8.0), asr_timeout_s=0.3)
    messages, _, _ = asyncio.run(fork_call(w.port, meta(), frames(speech16k, 16000)))
    assert messages[-1]["event"] == "asr_error" and messages[-1]["retryable"] is True
    assert w.stats()["asr_timeouts"] == 1 and not any(m.get("data", {}).get("text") == "late" for m in messages)
    assert "timeout" in messages[-1]["reason"]


def test_empty_binary_frame_flushes_the_utterance_in_progress(worker_for, speech16k):
    w = worker_for()
    audio = frames(speech16k[:16000 * 2 * 3], 16000, silence_s=0)  # cut mid-sentence at 3.0 s
    messages, _, _ = asyncio.run(fork_call(w.port, meta(), [*audio, b""]))
    assert by_kind(messages) == ["speech_started", "speech_ended", "transcript"]
    assert messages[-1]["data"]["eos_wait_ms"] < 200


def test_a_client_offering_no_subprotocol_is_served(worker_for, speech16k):
    w = worker_for()
    messages, _, sub = asyncio.run(fork_call(w.port, meta(), frames(speech16k, 16000), subprotocols=[]))
    assert sub is None
    assert by_kind(messages) == ["speech_started", "speech_ended", "transcript"]


class _MeetingAsr(FakeAsr):
    """The first two transcriptions wait for each other: only a worker that runs ASR for several calls side
    by side gets past them (one at a time, the first would wait until the barrier gives up)."""

    def __init__(self) -> None:
        super().__init__(text="네")
        self.barrier = threading.Barrier(2, timeout=WAIT_S)
        self._arrivals = 0
        self._count_lock = threading.Lock()

    def transcribe(self, pcm, sample_rate, context):  # type: ignore[no-untyped-def]
        with self._count_lock:
            self._arrivals += 1
            first_two = self._arrivals <= 2
        if first_two:
            self.barrier.wait()  # BrokenBarrierError after WAIT_S if the other never comes
        return super().transcribe(pcm, sample_rate, context)


def test_many_calls_at_once_do_not_wait_for_each_other(worker_for, speech16k):
    calls = 12
    engine = _MeetingAsr()
    w = worker_for(engine)
    audio = frames(speech16k, 16000)

    async def all_calls() -> list[list[dict]]:
        results = await asyncio.gather(*(fork_call(w.port, meta(), audio) for _ in range(calls)))
        return [r[0] for r in results]

    results = asyncio.run(all_calls())
    assert all(by_kind(m) == ["speech_started", "speech_ended", "transcript"] for m in results)
    assert not engine.barrier.broken and w.stats()["asr_errors"] == 0
    assert w.stats()["connections"] == calls
    deadline = time.monotonic() + WAIT_S  # the server sees each close a moment after the client
    while w.stats()["active"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.stats()["active"] == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_until_cancelled(tmp_path, speech16k):
    port = free_port()
    cfg = Config(worker=dataclasses.replace(make_cfg(tmp_path).worker, listen=("127.0.0.1", port)))

    async def scenario() -> list[dict]:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(cfg, FakeAsr(text="네"), ready=ready))
        await asyncio.wait_for(ready.wait(), 10)
        messages, _, _ = await fork_call(port, meta(), frames(speech16k, 16000))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return messages

    assert by_kind(asyncio.run(scenario()))[-1] == "transcript"


def test_worker_thread_lifecycle(tmp_path):
    w = WorkerThread(make_cfg(tmp_path), FakeAsr())
    with pytest.raises(RuntimeError):
        _ = w.port
    w.start()
    try:
        assert w.port > 0
        with pytest.raises(RuntimeError, match="already started"):
            w.start()
    finally:
        w.stop()
    w.stop()  # twice is harmless


def test_worker_thread_reports_a_port_in_use(tmp_path):
    with WorkerThread(make_cfg(tmp_path), FakeAsr()) as first:
        cfg = Config(worker=dataclasses.replace(make_cfg(tmp_path).worker, listen=("127.0.0.1", first.port)))
        with pytest.raises(RuntimeError, match="failed to start"):
            WorkerThread(cfg, FakeAsr()).start()
