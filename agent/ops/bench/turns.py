"""`callagent bench turns`: how the speech worker takes turns on real Korean speech.

Turn set: every Korean clip of the speech set, with hesitations inserted at word boundaries (Vosk word times;
pauses of 300, 500 and 800 ms, the speaker's own continuation after them), as recorded and through 8 kHz
G.711 μ-law. Each stream goes through the real worker (WebSocket, CallStream, live Vosk, Smart Turn, the
end-of-turn policy) faster than real time: the stream waits at each turn check until the transcript so far is
decoded, so decisions are those of a real-time call. Reported: the end-of-turn wait at true ends (silence
until the decision, p50/p95) and why the turn ended, the share of hesitations taken as the end of turn, and
false barge-ins (a "네", a 200 ms burst, the agent's echo at −12 dB) fed during agent speech on a stereo fork.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from agent.config import Config
from agent.engines.asr.base import AsrContext
from agent.media.resample import resample
from agent.ops.bench.asr import load_manifest
from agent.ops.bench.mulaw import decode, encode
from agent.ops.bench.stats import summary

log = logging.getLogger(__name__)

PAUSES_MS = (300, 500, 800)
CONDITIONS = ("as recorded", "8 kHz μ-law")
BOUNDARIES_PER_CLIP = 3
EDGE_S = 0.8  # no hesitation this close to a clip's first or last word
LEAD_S, TAIL_S = 0.3, 1.5
CONCURRENCY = 2  # streams at once: the reference machine has two cores
QUICK_CLIPS = 4
RATE = 16000
# A final whose speech ended this close to a hesitation (VAD hangover, unvoiced word ends) ended the turn there.
MATCH_BEFORE_S, MATCH_AFTER_S = 0.5, 0.2


@dataclass
class TurnStream:
    clip: str
    condition: str
    pause_ms: int
    rate: int
    pcm: np.ndarray = field(repr=False)
    hesitations: list[float]  # stream seconds where each inserted silence starts
    true_end: float  # stream seconds where the clip's last word ends


def _phone(pcm: np.ndarray) -> np.ndarray:
    """8 kHz μ-law as the fork delivers a G.711 call at 8 kHz."""
    return decode(encode(resample(pcm, RATE, 8000)))


def boundaries(words: Sequence[tuple[float, float]], count: int = BOUNDARIES_PER_CLIP) -> list[float]:
    """Up to `count` word ends spread over the clip's interior (not within EDGE_S of its first or last word)."""
    if len(words) < 3:
        return []
    first, last = words[0][0], words[-1][1]
    inner = [end for (_, end), (start, _) in zip(words, words[1:], strict=False)
             if end - first >= EDGE_S and last - start >= EDGE_S]
    if len(inner) <= count:
        return inner
    step = len(inner) / count
    return [inner[int(step * (k + 0.5))] for k in range(count)]


def build(speech_dir: Path, *, quick: bool) -> tuple[list[TurnStream], dict[str, list[float]]]:
    from agent.engines.asr.vosk import VoskAsr

    vosk = VoskAsr()
    rows = [r for r in load_manifest(speech_dir) if r.language == "ko"]
    rows = rows[:QUICK_CLIPS] if quick else rows
    streams: list[TurnStream] = []
    cuts: dict[str, list[float]] = {}
    for row in rows:
        audio, sr = sf.read(speech_dir / row.file, dtype="int16")
        audio = resample(audio if audio.ndim == 1 else audio[:, 0], sr, RATE)
        words = [(s.start, s.end) for s in vosk.transcribe(audio, RATE, AsrContext(language="ko")).segments]
        if not words:
            continue
        cuts[row.file] = cut = boundaries(words)
        for pause_ms in PAUSES_MS:
            parts, hes, pos, offset = [np.zeros(int(LEAD_S * RATE), np.int16)], [], 0, LEAD_S
            for t in cut:
                i = int(t * RATE)
                parts += [audio[pos:i], np.zeros(pause_ms * RATE // 1000, np.int16)]
                hes.append(offset + t)
                offset += pause_ms / 1000
                pos = i
            parts += [audio[pos:], np.zeros(int(TAIL_S * RATE), np.int16)]
            pcm = np.concatenate(parts)
            true_end = offset + words[-1][1]
            streams.append(TurnStream(row.file, CONDITIONS[0], pause_ms, RATE, pcm, hes, true_end))
            streams.append(TurnStream(row.file, CONDITIONS[1], pause_ms, 8000, _phone(pcm), hes, true_end))
    return streams, cuts


async def play(port: int, pcm: np.ndarray, rate: int, *, channels: int = 1, call_id: str = "bench") -> list[dict]:
    """One fork: metadata, 20 ms frames with no pacing, the graceful-shutdown flush; every message until each
    started utterance has its final."""
    from websockets.asyncio.client import connect

    data, n = pcm.astype("<i2").tobytes(), rate // 50 * 2 * channels
    async with connect(f"ws://127.0.0.1:{port}/{call_id}", subprotocols=["audio.drachtio.org"]) as ws:
        await ws.send(json.dumps({"call_id": call_id, "rate": rate, "channels": channels}))
        for i in range(0, len(data), n):
            await ws.send(data[i:i + n])
        await ws.send(b"")
        messages: list[dict] = []
        async with asyncio.timeout(300):
            while True:
                messages.append(json.loads(await ws.recv()))
                started = sum(m.get("event") == "speech_started" for m in messages)
                finals = sum(m.get("type") == "transcription" or m.get("event") == "asr_error" for m in messages)
                if started and finals >= started:
                    return messages


def finals(messages: list[dict]) -> list[dict[str, Any]]:
    return [m["data"] for m in messages if m.get("type") == "transcription" and m["data"].get("final")]


def score_stream(stream: TurnStream, messages: list[dict]) -> dict[str, Any]:
    """Which hesitations ended the turn, and how the true end was taken."""
    done = finals(messages)
    taken = []
    for h in stream.hesitations:
        hit = next((f for f in done if h - MATCH_BEFORE_S <= f["end"] <= h + MATCH_AFTER_S), None)
        taken.append(None if hit is None else hit["eot"]["reason"])
    end = next((f for f in reversed(done) if f["end"] >= stream.true_end - 1.0), None)
    matched = {id(f) for f in done if any(h - MATCH_BEFORE_S <= f["end"] <= h + MATCH_AFTER_S
                                          for h in stream.hesitations)}
    other = [f for f in done if id(f) not in matched and f is not end]
    return {"clip": stream.clip, "condition": stream.condition, "pause_ms": stream.pause_ms,
            "hesitations_taken": taken, "other_splits": len(other),
            "end": None if end is None else {**end["eot"], "text": end["text"]}}


def summarise(scored: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for condition in (*CONDITIONS, "all"):
        rows = [s for s in scored if condition in ("all", s["condition"])]
        ends = [s["end"] for s in rows if s["end"] is not None]
        reasons = {r: sum(e["reason"] == r for e in ends) / len(ends) if ends else None
                   for r in ("sentence_end", "audio_model", "silence", "forced")}
        hes: dict[str, Any] = {}
        for pause in PAUSES_MS:
            taken = [t for s in rows if s["pause_ms"] == pause for t in s["hesitations_taken"]]
            hes[str(pause)] = {"n": len(taken), "taken_share": sum(t is not None for t in taken) / len(taken)
                               if taken else None}
        long_taken = [t for s in rows if s["pause_ms"] >= 500 for t in s["hesitations_taken"]]
        out[condition] = {
            "true_ends": len(ends), "missed_ends": len(rows) - len(ends),
            "eot_wait_ms": summary(e["silence_ms"] for e in ends),
            "end_reasons": reasons, "slow_path_share": reasons["silence"],
            "hesitations": hes,
            "hesitations_500_plus_taken_share": (sum(t is not None for t in long_taken) / len(long_taken)
                                                 if long_taken else None),
            "other_splits": sum(s["other_splits"] for s in rows),
        }
    return out


def _ne() -> np.ndarray:
    """A spoken "네" (espeak-ng Korean, ~0.3 s) at 16 kHz; a short word of a real clip if espeak-ng is absent."""
    try:
        wav = subprocess.run(["espeak-ng", "-v", "ko", "--stdout", "네"], capture_output=True, check=True,
                             timeout=10).stdout
        import io

        audio, sr = sf.read(io.BytesIO(wav), dtype="int16")
        return resample(audio, sr, RATE)
    except (OSError, subprocess.SubprocessError):
        return np.zeros(0, np.int16)


CASE_S = 7.0  # each false barge-in case; a sentinel sentence follows so every stream ends with a final


def barge_cases(speech_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(caller LEFT, what the caller hears RIGHT) at 16 kHz: the agent talks for 4 s from 0.5 s; something
    happens on the caller side at 1.5 s; at CASE_S the caller says a sentence over silence (the sentinel)."""
    agent = resample(sf.read(speech_dir / "ko/zeroth/104_003_0193.flac", dtype="int16")[0], RATE, RATE)[:4 * RATE]
    caller = sf.read(speech_dir / "ko/picovoice/leopard_test_ko.wav", dtype="int16")[0]
    n = int(CASE_S * RATE)
    sentinel = np.concatenate([caller, np.zeros(int(TAIL_S * RATE))])
    right = np.zeros(n + sentinel.size)
    right[RATE // 2:RATE // 2 + agent.size] = agent
    echo = np.zeros(n + sentinel.size)
    echo[RATE // 2 + 1920:RATE // 2 + 1920 + agent.size] = agent * 10 ** (-12 / 20)  # 120 ms, −12 dB
    rng = np.random.default_rng(5)
    burst = rng.normal(0, 6000, RATE // 5) * np.hanning(RATE // 5)  # 200 ms cough-like noise burst
    ne = _ne()
    if ne.size == 0:
        ne = caller[int(0.6 * RATE):int(0.95 * RATE)]  # "그는", ~0.35 s
    cases = {}
    for name, sound in (("backchannel 네", ne), ("200 ms burst", burst), ("echo −12 dB", np.zeros(0)),
                        ("real barge-in", caller[int(0.6 * RATE):int(3.5 * RATE)])):
        left = echo.copy() if name == "echo −12 dB" else np.zeros(n + sentinel.size)
        left[int(1.5 * RATE):int(1.5 * RATE) + sound.size] += sound
        left[n:] += sentinel
        cases[name] = (np.clip(left, -32768, 32767).astype(np.int16), np.clip(right, -32768, 32767).astype(np.int16))
    return cases


def barge_outcome(messages: list[dict]) -> dict[str, Any]:
    """What the worker said about the case (the sentinel sentence after CASE_S left out)."""
    events = [m for m in messages if m.get("type") == "json" and m.get("event") != "heartbeat"
              and m.get("at", 0.0) < CASE_S]

    def first(kind: str) -> float | None:
        return next((m["at"] for m in events if m["event"] == kind), None)

    done = [f for f in finals(messages) if f["start"] < CASE_S]
    return {"onset_at": first("speech_onset"), "dropped": first("speech_dropped") is not None,
            "started": first("speech_started") is not None, "paused_at": first("speech_paused"),
            "continuing_at": first("speech_continuing"), "final_text": done[0]["text"] if done else None}


def smart_turn_ms(speech_dir: Path, n: int = 20) -> dict[str, Any]:
    """Smart Turn inference time on one thread (features + ONNX), over real 8 s windows."""
    from agent.media import smart_turn

    audio = sf.read(speech_dir / "ko/zeroth/104_003_0452.flac", dtype="int16")[0]
    model = smart_turn.shared()
    times = []
    for k in range(n):
        end = RATE * 2 + (k * RATE // 2) % max(1, audio.size - RATE * 2)
        t0 = time.perf_counter()
        model.score(audio[:end], RATE)
        times.append((time.perf_counter() - t0) * 1000)
    return summary(times)


def run(cfg: Config, speech_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    from agent.worker import session
    from agent.worker.server import WorkerThread

    # Audio goes in faster than real time: let the stream wait at each turn check for the live decoder.
    session.SIGNAL_TIMEOUT_S = 120.0
    streams, cuts = build(speech_dir, quick=quick)
    worker_cfg = replace(cfg.worker, listen=("127.0.0.1", 0), idle_timeout_s=300.0) \
        if hasattr(cfg.worker, "idle_timeout_s") else replace(cfg.worker, listen=("127.0.0.1", 0))
    t0 = time.monotonic()
    with WorkerThread(replace(cfg, worker=worker_cfg)) as worker:

        async def all_streams() -> list[list[dict]]:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(k: int, s: TurnStream) -> list[dict]:
                async with gate:
                    return await play(worker.port, s.pcm, s.rate, call_id=f"turns-{k}")

            return await asyncio.gather(*(one(k, s) for k, s in enumerate(streams)))

        results = asyncio.run(all_streams())
        turn_s = time.monotonic() - t0
        cases = barge_cases(speech_dir)

        async def all_cases() -> dict[str, dict[str, Any]]:
            out = {}
            for name, (left, right) in cases.items():
                for channels in (2, 1):
                    pcm = np.stack([left, right], axis=1).reshape(-1) if channels == 2 else left
                    messages = await play(worker.port, pcm, RATE, channels=channels, call_id="barge")
                    out[f"{name} ({'stereo' if channels == 2 else 'mono'})"] = barge_outcome(messages)
            return out

        barge = asyncio.run(all_cases())
        stats = worker.stats()
    scored = [score_stream(s, m) for s, m in zip(streams, results, strict=True)]
    return {"engine": cfg.worker.asr_engine, "vad": {k: getattr(cfg.worker.vad, k) for k in (
                "end_silence_ms", "sentence_end_ms", "audio_model_ms", "smart_turn", "smart_turn_threshold",
                "smart_turn_veto", "pause_ms", "barge_in_ms", "barge_in_confirm_ms", "min_speech_ms")},
            "clips": len(cuts), "streams": len(streams), "hesitations_per_stream": BOUNDARIES_PER_CLIP,
            "turn_set_s": round(turn_s, 1), "summary": summarise(scored), "barge_in": barge,
            "smart_turn_ms": smart_turn_ms(speech_dir), "worker": {k: stats.get(k) for k in (
                "smart_turn_calls", "turn_previews", "turns_sentence_end", "turns_audio_model", "turns_silence",
                "turns_forced", "echo_frames")},
            "streams_detail": scored}


def turns_md(r: dict[str, Any]) -> str:
    from agent.ops.bench.report import num, pct, table

    if "error" in r:
        return f"### Turns\n\nFAILED: {r['error']}"
    v = r["vad"]
    head = (f"### Turns — {r['clips']} Korean clips × pauses {', '.join(map(str, PAUSES_MS))} ms × "
            f"{len(CONDITIONS)} conditions = {r['streams']} streams, {r['hesitations_per_stream']} hesitations each\n\n"
            f"ASR {r['engine']} (live partials); sentence end after {v['sentence_end_ms']} ms, audio model "
            f"(Smart Turn {'on' if v['smart_turn'] else 'off'}, ≥ {v['smart_turn_threshold']}, veto < "
            f"{v['smart_turn_veto']}) after {v['audio_model_ms']} ms, fallback {v['end_silence_ms']} ms.\n\n")
    rows = []
    for cond, s in r["summary"].items():
        w, reasons, hes = s["eot_wait_ms"], s["end_reasons"], s["hesitations"]
        rows.append([cond, s["true_ends"], num(w["p50"]), num(w["p95"]), pct(reasons["sentence_end"], 0),
                     pct(reasons["audio_model"], 0), pct(s["slow_path_share"], 0),
                     *(pct(hes[str(p)]["taken_share"]) for p in PAUSES_MS),
                     pct(s["hesitations_500_plus_taken_share"]), s["other_splits"]])
    turns = table(["Condition", "True ends", "EOT wait p50 ms", "p95 ms", "By sentence end", "By audio model",
                   "Slow path (fallback)", *(f"Hesitation {p} ms taken" for p in PAUSES_MS),
                   "≥ 500 ms taken", "Other splits"], rows)
    barge = table(["Case (during agent speech)", "Onset at s", "Dropped", "Started", "Continuing at s", "Final"],
                  [[name, num(o["onset_at"], 2), "yes" if o["dropped"] else "no", "yes" if o["started"] else "no",
                    num(o["continuing_at"], 2), o["final_text"] or "—"] for name, o in r["barge_in"].items()])
    st = r["smart_turn_ms"]
    return (head + turns + "\n\nFalse barge-ins on the worker side (the agent talks from 0.5 s; the event at "
            "1.5 s; stereo = echo gate on):\n\n" + barge
            + f"\n\nSmart Turn, one thread: p50 {num(st['p50'])} ms, p95 {num(st['p95'])} ms. "
            f"Turn set through the worker in {r['turn_set_s']:.0f} s.")
