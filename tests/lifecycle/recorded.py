"""A recorded call as the controller leaves it: a stereo WAV as FreeSWITCH's `uuid_record` writes it with
RECORD_STEREO=true (caller LEFT, what the caller hears RIGHT, 16-bit PCM at the channel rate), sealed by the
privacy module, and the call's turns and events stored through CallStore (caller turns carry the worker's
stream times in `detail`, as agent/call/turn.py stores them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf

from agent.privacy.keys import Keyring
from agent.privacy.recording import SealedRecording, seal_recording
from agent.store.calls import CallStore
from agent.store.db import Database

RATE = 8000
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Said:
    text: str
    start: float   # stream seconds (the worker's clock: 0 = the fork's first frame)
    end: float
    level: int = 4000


def tone(seconds: float, level: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def caller_audio(said: Sequence[Said], total_s: float, offset_s: float,
                 speech: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """LEFT channel: silence, and each utterance (a tone at its level, or the given speech) at its time."""
    left = np.zeros(int(total_s * RATE), np.int16)
    for i, s in enumerate(said):
        a = int((s.start + offset_s) * RATE)
        clip = speech[i] if speech is not None else tone(s.end - s.start, s.level)
        left[a:a + len(clip)] = clip[:len(left) - a]
    return left


def record_call(db: Database, store: CallStore, keyring: Keyring, directory: Path, call_id: str,
                said: Sequence[Said], *, offset_s: float = 0.6, masked: Sequence[tuple[float, float]] = (),
                speech: Sequence[np.ndarray] | None = None) -> SealedRecording:
    """Stores the call (greeting, caller turns, agent answers, recording events) and seals its recording."""
    total = max(s.end for s in said) + offset_s + 1.0
    left = caller_audio(said, total, offset_s, speech)
    right = (np.random.default_rng(7).standard_normal(len(left)) * 300).astype(np.int16)  # the agent's side
    for a, b in masked:  # `uuid_record … mask`: both channels silent
        left[int(a * RATE):int(b * RATE)] = 0
        right[int(a * RATE):int(b * RATE)] = 0
    directory.mkdir(parents=True, exist_ok=True)
    wav = directory / f"{call_id}.wav"
    sf.write(str(wav), np.stack([left, right], axis=1), RATE, subtype="PCM_16")

    def at(seconds: float) -> str:
        return (T0 + timedelta(seconds=seconds)).isoformat()

    store.submit("call_start", call_id=call_id, caller="01012345678", destination="15881234", industry="banking",
                 started_at=at(-1), answered_at=at(-1))
    store.submit("turn", call_id=call_id, seq=1, speaker="agent", text="안녕하세요, 하늘은행입니다.", started_at=at(-1),
                 source="greeting")
    events = [("recording_started", 0.0), ("fork_connected", offset_s)]
    for a, b in masked:
        events += [("recording_masked", a), ("recording_unmasked", b)]
    for n, (kind, t) in enumerate(events, 1):
        store.submit("event", call_id=call_id, seq=n, at=at(t), kind=kind)
    seq = 2
    for i, s in enumerate(said):
        store.submit("turn", call_id=call_id, seq=seq, speaker="caller", text=s.text, started_at=at(s.end + 0.5),
                     source="asr", engine="vosk",
                     detail={"utterance": i + 1, "start": s.start, "end": s.end, "eot": "silence"})
        store.submit("turn", call_id=call_id, seq=seq + 1, speaker="agent", text="네, 확인해 드리겠습니다.",
                     started_at=at(s.end + 0.6), source="policy")
        seq += 2
    store.submit("call_end", call_id=call_id, ended_at=at(total), end_reason="completed")
    assert store.flush(10)
    return seal_recording(wav, call_id, keyring, db)
