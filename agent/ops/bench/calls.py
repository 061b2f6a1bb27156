"""What the benchmark callers say and what is read back: call scripts, the sim's CallLogs, the turn rows.

Times from the CallLog are the simulator's view of the channel (monotonic seconds); the turn rows carry the
parts the agent measured itself (milliseconds).
"""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from agent.sim import CallLog, CallScript

IDLE = {"settle_ms": 300, "timeout_s": 90}
# Trailing silence after an utterance is shorter than end-of-speech wait + ASR, so wait for the reply to start.
REPLY = {"wait_playback": {"timeout_s": 30}}
BARGE_AFTER_MS = 500
MAX_CLIP_S = 11.0        # longer clips make calls long without adding turns
TEXT_TURNS = ("배송 조회 부탁드려요", "반품하고 싶어요", "환불 규정이 궁금해요")
BARGE_TEXT = "잠깐만요, 주소를 바꾸고 싶어요"


@dataclass(frozen=True)
class Clip:
    path: Path
    duration_s: float


def korean_clips(speech_dir: Path, max_s: float = MAX_CLIP_S) -> list[Clip]:
    """Korean recordings from MANIFEST.tsv (with or without a transcript: only the audio is used), shortest first."""
    manifest = speech_dir / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    clips = []
    with manifest.open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            path = speech_dir / rec["file"]
            if rec["language"] == "ko" and int(rec["speakers"]) == 1 and path.is_file():
                clips.append(Clip(path, float(rec["duration_s"])))
    short = [c for c in clips if c.duration_s <= max_s] or clips
    return sorted(short, key=lambda c: c.duration_s)


def render_speech(text: str, out: Path, voice: str = "ko") -> Path:
    """espeak-ng speech with clean silence around it, so its voiced onset and end are unambiguous."""
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), "--", text], check=True, capture_output=True,
                   timeout=30)
    return out


def gated_clip(src: Path, out: Path, speech_dbfs: float = -35.0, frame_s: float = 0.02) -> Path:
    """A recording with everything before its first voiced frame (RMS ≥ `speech_dbfs`) silenced.

    A recording opens with room noise that the VAD may take for speech before the simulator's −40 dBFS onset,
    which would make the onset → uuid_break time meaningless; the speech itself is left as recorded.
    """
    audio, rate = sf.read(str(src), dtype="float32", always_2d=True)
    x = audio[:, 0].copy()
    n = max(1, int(rate * frame_s))
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms_db = 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    voiced = np.flatnonzero(rms_db >= speech_dbfs)
    if len(voiced):
        x[: int(voiced[0]) * n] = 0.0
    sf.write(str(out), x, rate, subtype="PCM_16")
    return out


def latency_script(i: int, clips: Sequence[Clip], barge_wav: Path | None) -> CallScript:
    """Greeting, two caller turns, then speech over the agent's reply (barge-in).

    Turns use real recordings when available; the barge-in uses `barge_wav` (a recording whose lead-in is
    silenced by `gated_clip`, or espeak-ng speech; never an injected transcript).
    """
    if clips and barge_wav is not None:
        a, b = (clips[(2 * i + k) % len(clips)] for k in range(2))
        say = [{"say_audio": {"path": str(a.path)}}, {"say_audio": {"path": str(b.path)}}]
        barge = {"barge_in": {"path": str(barge_wav), "after_ms": BARGE_AFTER_MS, "timeout_s": 60}}
    else:
        say = [{"say_text": TEXT_TURNS[0]}, {"say_text": TEXT_TURNS[1]}]
        barge = {"barge_in": {"text": TEXT_TURNS[2], "after_ms": BARGE_AFTER_MS, "timeout_s": 60}}
    steps = [{"wait_idle": IDLE}, say[0], REPLY, {"wait_idle": IDLE}, say[1], barge, REPLY, {"wait_idle": IDLE},
             "hangup"]
    return CallScript(caller=f"0105550{i % 10000:04d}", variables={"callagent_industry": "ecommerce"},
                      steps=steps, name=f"latency-{i}")


def load_script(i: int, clip: Path, turns: int) -> CallScript:
    """Greeting, then `turns` short caller utterances, each waiting for the reply to finish."""
    steps: list[Any] = [{"wait_idle": IDLE}]
    for _ in range(turns):
        steps += [{"say_audio": {"path": str(clip)}}, REPLY, {"wait_idle": IDLE}]
    steps.append("hangup")
    return CallScript(caller=f"0107770{i % 10000:04d}", variables={"callagent_industry": "ecommerce"},
                      steps=steps, name=f"load-{i}")


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Freezes what is alive now so the simulator's full collections stay short while calls run: a pause in
    the simulator would show up as packets sent late, which is not the agent's doing."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (b - a) * 1000.0


def greeting_ms(log: CallLog) -> float | None:
    """Answer → PLAYBACK_START of the first playback (the greeting)."""
    first = log.heard[0] if log.heard else None
    return ms(log.answered_at, first.t_start if first else None)


def voice_to_voice_ms(log: CallLog) -> list[float | None]:
    """Per caller utterance: its last voiced frame → the next PLAYBACK_START on the channel (None: no reply)."""
    return [None if v is None else v * 1000.0 for v in log.response_latencies()]


def barge_in_ms(log: CallLog) -> list[float | None]:
    """Per barge-in utterance: speech onset → the first `uuid_break` while it streamed (None: nothing was cut).

    Negative when the VAD fired on sound below the simulator's −40 dBFS onset."""
    out: list[float | None] = []
    breaks = [c.t for c in log.commands if c.line.startswith("api uuid_break ")]
    for utt in log.utterances:
        if not utt.barge_in or utt.t_first_voiced is None:
            continue
        end = utt.t_end if utt.t_end is not None else float("inf")
        after = [t for t in breaks if utt.t_queued <= t <= end]
        out.append(ms(utt.t_first_voiced, after[0]) if after else None)
    return out


def reply_residuals_ms(log: CallLog, turns: Iterable[dict[str, Any]]) -> list[float]:
    """Voice-to-voice minus the parts the agent stored (end-of-speech wait, ASR, transcript → audio) per reply:
    the audio and event paths between the processes, and where the VAD's speech end differs from the sim's."""
    starts = {h.headers.get("utt_id"): h.t_start for h in log.heard if h.headers.get("chunk") == "0"}
    ends = sorted(u.t_last_voiced for u in log.utterances if u.t_last_voiced is not None)
    out = []
    for t in turns:
        utt_id = _detail(t).get("utt_id")
        asr = t["asr_wait_ms"] if t.get("asr_wait_ms") is not None else t.get("asr_ms")
        parts = (t.get("eos_wait_ms"), asr, t.get("first_audio_ms"))
        if utt_id not in starts or any(p is None for p in parts):
            continue
        before = [e for e in ends if e <= starts[utt_id]]
        if before:
            out.append((starts[utt_id] - before[-1]) * 1000.0 - sum(parts))
    return out


def agent_turns(rows: Iterable[dict[str, Any]], call_id: str | None = None) -> list[dict[str, Any]]:
    """Agent replies written by a caller turn (source 'policy'), optionally of one call."""
    return [r for r in rows if r["speaker"] == "agent" and r["source"] == "policy"
            and (call_id is None or r["call_id"] == call_id)]


def _detail(row: dict[str, Any] | None) -> dict[str, Any]:
    detail = (row or {}).get("detail") or {}
    return json.loads(detail) if isinstance(detail, str) else detail


def overhead_ms(row: dict[str, Any]) -> float | None:
    value = _detail(row).get("overhead_ms")
    return None if value is None else float(value)


def asr_wait_ms(reply: dict[str, Any], rows: Sequence[dict[str, Any]]) -> float | None:
    """End-of-speech decision → transcript, where the worker reports it (a recogniser that starts during the
    pause has part of its time hidden in the end-of-speech wait); on the reply or on the caller turn before it."""
    caller = next((r for r in rows if r["call_id"] == reply["call_id"] and r["seq"] == reply["seq"] - 1), None)
    for row in (reply, caller):
        value = _detail(row).get("asr_wait_ms")
        if value is not None:
            return float(value)
    return None


def call_minutes(logs: Iterable[CallLog]) -> float:
    """Answered call time in minutes (answer → end as the simulator saw it)."""
    total = 0.0
    for log in logs:
        if log.answered_at is not None and log.t_end is not None:
            total += log.t_end - log.answered_at
    return total / 60.0


def fork_totals(logs: Iterable[CallLog]) -> dict[str, int]:
    packets = late = messages = 0
    for log in logs:
        for fork in log.forks:
            packets += fork.packets_sent
            late += fork.frames_late
            messages += fork.frames_sent
    return {"packets_sent": packets, "packets_late": late, "messages_sent": messages}
