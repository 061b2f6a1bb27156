"""Turn-taking on the wire: the worker over real loopback WebSockets (the test plays mod_audio_fork's side),
with real Korean speech and the real Vosk decoder where the transcript decides the end of turn."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from agent.config import Config, VadConfig, WorkerConfig
from agent.engines.asr.base import AsrEngine
from agent.engines.asr.fake import FakeAsr
from agent.media.endpointing import SpeechOnset, SpeechStarted
from agent.ops.bench.mulaw import telephone_band
from agent.worker import session as worker_session
from agent.worker.live import partial_shift
from agent.worker.server import WorkerThread
from agent.worker.session import WorkerStats
from agent.worker.stream import CallStream

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
CLIP = SPEECH_DIR / "ko/picovoice/leopard_test_ko.wav"  # "그는 디비전 이 피하면서 기흥 옆으로 걸어갔다"
OTHER = SPEECH_DIR / "ko/zeroth/104_003_0193.flac"
HESITATE_AT = 2.01  # end of "하면서" (Vosk word times): a connective ending, the sentence goes on
WAIT_S = 120.0
RATE = 16000


def load(path: Path) -> np.ndarray:
    if not path.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    import soundfile as sf

    audio, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    return audio


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), np.int16)


def chunks(pcm: np.ndarray, channels: int = 1, *, rate: int = RATE) -> list[bytes]:
    data, n = pcm.astype("<i2").tobytes(), rate // 50 * 2 * channels
    return [data[i:i + n] for i in range(0, len(data), n)]


@pytest.fixture
def worker(tmp_path, monkeypatch):
    # Audio goes in faster than real time, so the live decoder lags; the stream waits for it at each pause.
    monkeypatch.setattr(worker_session, "SIGNAL_TIMEOUT_S", WAIT_S)
    started: list[WorkerThread] = []

    def start(engine: AsrEngine, **vad: object) -> WorkerThread:
        # No idle close while the stream waits for the decoder after the last audio (a loaded machine).
        cfg = Config(worker=WorkerConfig(listen=("127.0.0.1", 0), hotwords_dir=str(tmp_path), idle_timeout_s=300,
                                         vad=dataclasses.replace(VadConfig(), **vad)))
        w = WorkerThread(cfg, engine).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="module")
def vosk() -> AsrEngine:
    from agent.engines.asr import vosk as vosk_engine

    return vosk_engine.create({}, "worker.asr.engines.vosk")


async def call(port: int, audio: Iterable[bytes], *, finals: int = 1, channels: int = 1,
               until: str | None = None, rate: int = RATE) -> list[dict]:
    """Sends metadata and audio, then collects messages until `finals` transcripts (or the `until` event)."""
    async with connect(f"ws://127.0.0.1:{port}/call-1", subprotocols=["audio.drachtio.org"]) as ws:
        await ws.send(json.dumps({"call_id": "call-1", "rate": rate, "channels": channels}))
        for chunk in audio:
            await ws.send(chunk)
        messages: list[dict] = []
        async with asyncio.timeout(WAIT_S):
            while sum(m.get("type") == "transcription" for m in messages) < finals:
                messages.append(json.loads(await ws.recv()))
                if until is not None and messages[-1].get("event") == until:
                    break
        return messages


def kinds(messages: list[dict]) -> list[str]:
    return [m.get("event") or m["data"]["event"] for m in messages if m.get("event") != "heartbeat"]


@pytest.mark.speech
def test_a_short_burst_gives_onset_then_dropped_and_never_a_turn(worker):
    speech = load(CLIP)
    # 160 ms of voice; webrtcvad's hangover makes it ~280 ms voiced, still short of the 300 ms min speech.
    burst = speech[int(1.5 * RATE):int(1.66 * RATE)]
    w = worker(FakeAsr(text="배송 조회해 주세요"))
    audio = np.concatenate([silence(0.5), burst, silence(1.0), speech, silence(1.2)])
    messages = asyncio.run(call(w.port, chunks(audio)))
    seen = kinds(messages)
    assert seen[:2] == ["speech_onset", "speech_dropped"]
    dropped = messages[[m.get("event") for m in messages].index("speech_dropped")]
    assert dropped["utterance"] == 1 and 160 <= dropped["voiced_ms"] < 300
    # The burst never became utterance 1: the sentence after it is utterance 1, and the only transcript.
    assert seen[2:4] == ["speech_onset", "speech_started"] and seen[-1] == "transcript"
    assert seen.count("transcript") == 1 and messages[-1]["data"]["utterance"] == 1
    assert w.stats()["utterances"] == 1


@pytest.mark.speech
@pytest.mark.parametrize("rate", [RATE, 8000])
def test_a_finished_korean_sentence_ends_after_the_short_silence(worker, vosk, rate):
    w = worker(vosk)
    audio = np.concatenate([load(CLIP), silence(1.5)])
    if rate == 8000:
        audio = telephone_band(audio, RATE, 8000)  # G.711 μ-law: Kaldi's partial lags most here
    messages = asyncio.run(call(w.port, chunks(audio, rate=rate), rate=rate))
    seen = kinds(messages)
    assert seen == ["speech_onset", "speech_started", "speech_continuing", "speech_paused", "turn_preview",
                    "speech_ended", "transcript"]
    preview, final = messages[[m.get("event") for m in messages].index("turn_preview")], messages[-1]["data"]
    assert preview["text"].endswith("다") and preview["utterance"] == 1
    assert final["eot"]["reason"] == "sentence_end" and final["eot"]["sentence_end"] is True
    assert final["eot"]["silence_ms"] == 240 and final["eos_wait_ms"] == 240
    assert 0.0 <= final["eot"]["smart_turn"] <= 1.0


@pytest.mark.speech
def test_a_hesitation_after_a_connective_ending_does_not_end_the_turn(worker, vosk):
    w = worker(vosk)
    speech = load(CLIP)
    cut = int(HESITATE_AT * RATE)
    audio = np.concatenate([speech[:cut], silence(0.6), speech[cut:], silence(1.5)])
    messages = asyncio.run(call(w.port, chunks(audio)))
    seen = kinds(messages)
    # One turn: paused at the hesitation, the caller went on, and the turn ended only at the real end.
    assert seen.count("speech_started") == 1 and seen.count("transcript") == 1
    assert seen.count("speech_paused") >= 2
    final = messages[-1]["data"]
    assert final["eot"]["reason"] == "sentence_end" and final["end"] > HESITATE_AT + 0.6
    assert "하면서" in final["text"] and final["text"].endswith("다")
    # The silence fed to the decoder at each turn check is taken out of the word times: they are stream times.
    words = {seg["text"]: seg for seg in final["segments"]}
    assert words["하면서"]["end"] == pytest.approx(HESITATE_AT, abs=0.1)
    assert words["기흥"]["start"] == pytest.approx(HESITATE_AT + 0.6, abs=0.1)


def test_decoder_pads_are_taken_out_of_word_times():
    shift = partial_shift(((1.0, 0.25), (2.0, 0.25)))
    assert [shift(t) for t in (0.5, 1.0, 1.1, 1.25, 1.5, 2.0, 2.3)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 1.25, 1.75, 1.8])


@pytest.mark.speech
def test_heartbeats_count_the_audio_received(worker):
    w = worker(FakeAsr(text="네"))
    audio = np.concatenate([silence(0.5), load(CLIP)[:RATE]])

    async def beats() -> list[dict]:
        async with connect(f"ws://127.0.0.1:{w.port}/call-1", subprotocols=["audio.drachtio.org"]) as ws:
            await ws.send(json.dumps({"call_id": "call-1", "rate": RATE}))
            for chunk in chunks(audio):
                await ws.send(chunk)
            got: list[dict] = []
            async with asyncio.timeout(WAIT_S):
                while len(got) < 2:
                    message = json.loads(await ws.recv())
                    if message.get("event") == "heartbeat":
                        got.append(message)
            return got

    first, second = asyncio.run(beats())
    assert (first["type"], first["seq"], second["seq"]) == ("json", 1, 2)
    assert second["audio_ms"] == 1500 and second["at"] == 1.5  # every byte sent before it was counted


@pytest.mark.speech
def test_echo_of_the_agent_on_a_stereo_fork_is_not_caller_speech(worker):
    agent = load(OTHER)[:4 * RATE].astype(np.float64)
    caller = load(CLIP).astype(np.float64)
    echo = np.zeros_like(agent)
    echo[120 * 16:] = agent[:-120 * 16] * 10 ** (-12 / 20)  # 120 ms, −12 dB
    w = worker(FakeAsr(text="네"))
    # First 4 s: the agent talks and only its echo comes back; then the caller speaks over silence.
    left = np.concatenate([echo, caller, silence(1.2)])
    right = np.concatenate([agent, np.zeros(caller.size + int(1.2 * RATE))])
    stereo = np.stack([left, right], axis=1).round().astype("<i2").reshape(-1)
    messages = asyncio.run(call(w.port, chunks(stereo, channels=2), channels=2))
    onsets = [m for m in messages if m.get("event") == "speech_onset"]
    assert onsets and all(m["at"] >= 4.0 for m in onsets)  # none during the echo
    assert kinds(messages)[-1] == "transcript" and w.stats()["echo_frames"] > 20


def stream_events(left: np.ndarray, right: np.ndarray | None) -> list[object]:
    """Runs CallStream (VAD, echo gate, endpointer) over the audio; mono when `right` is None."""
    stream = CallStream(RATE, VadConfig(), WorkerStats(), channels=1 if right is None else 2)
    pcm = left if right is None else np.stack([left, right], axis=1).reshape(-1)
    events = stream.feed(np.clip(pcm, -32768, 32767).round().astype("<i2").tobytes())
    return events + stream.flush()


@pytest.mark.speech
@pytest.mark.parametrize("gain_db", [-6, -12, -30])
@pytest.mark.parametrize("delay_ms", [20, 120, 250])
def test_echo_alone_never_makes_an_onset_and_double_talk_does(gain_db, delay_ms):
    agent = load(OTHER).astype(np.float64)
    echo = np.zeros_like(agent)
    d = delay_ms * 16
    echo[d:] = agent[:-d] * 10 ** (gain_db / 20)
    assert not [e for e in stream_events(echo, agent) if isinstance(e, SpeechOnset | SpeechStarted)]
    caller = np.zeros_like(agent)
    speech = load(CLIP).astype(np.float64)
    caller[RATE:RATE + speech.size] = speech
    started = [e for e in stream_events(echo + caller, agent) if isinstance(e, SpeechStarted)]
    # The caller's sentence runs from ~1.63 s to ~4.4 s; under loud echo its first quiet syllable may be lost.
    assert started and 1.5 <= started[0].at <= 2.3


@pytest.mark.speech
def test_without_the_reference_the_same_echo_is_taken_for_speech():
    agent = load(OTHER).astype(np.float64)
    echo = np.zeros_like(agent)
    echo[1920:] = agent[:-1920] * 10 ** (-12 / 20)
    assert [e for e in stream_events(echo, None) if isinstance(e, SpeechStarted)]
