"""`callagent dataset export`: caller segments of sealed call recordings as VibeVoice-ASR fine-tuning data.

Layout (what `finetuning-asr/lora_finetune.py` reads, one directory per split): `<out>/<split>/<call>_<seq>.wav`
(the caller, LEFT channel of the stereo recording, at the recording's rate) and beside it `<call>_<seq>.json`:
`{"audio_duration", "audio_path", "segments": [{"speaker", "text", "start", "end"}], "customized_context"}`,
plus provenance keys the fine-tuning code ignores. `<out>/manifest.jsonl` lists every sample and every
dropped turn with its reason.

Text is the reviewer's where a correction exists, else the recogniser's; personal data is masked in it
(agent.privacy.pii) and the matching audio is silenced (`pii="silence"`) or the segment dropped (`pii="drop"`).
The split is by call (a hash of the call id), never by segment, so no call's voice is in two splits.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from agent.privacy.keys import Keyring, RecordingKeyError
from agent.privacy.pii import mask_text
from agent.privacy.recording import export_recording
from agent.store.db import Database

Split = Literal["train", "dev", "test"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")
PiiPolicy = Literal["silence", "drop"]
PAD_S = 0.15            # around a turn's VAD times: the VAD cuts close to the first and last syllable
PII_MARGIN_S = 0.4      # around a masked item's estimated time: the estimate is by character position
MIN_SEGMENT_S = 0.3
_MASK_LABEL = re.compile(r"\[[^\[\]]{1,40}\]")  # the masked forms pii.mask_text writes: [카드번호 ****3456]


def split_of(call_id: str, dev: float = 0.1, test: float = 0.1) -> Split:
    """Deterministic split of a call: its id's sha256 as a fraction in [0, 1)."""
    x = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big") / 2**64
    return "test" if x < test else "dev" if x < test + dev else "train"


@dataclass(frozen=True)
class CallerTurn:
    seq: int
    text: str           # as stored (the controller stores masked text) or the reviewer's correction
    start: float        # seconds of the audio stream the worker heard (turn detail start/end)
    end: float
    reviewed: bool = False


@dataclass
class Segment:
    call_id: str
    seq: int
    text: str           # masked
    start: float        # seconds from the recording's start
    end: float
    audio: np.ndarray   # int16, the caller only
    rate: int
    reviewed: bool
    silenced: list[tuple[float, float]] = field(default_factory=list)  # seconds within the clip

    @property
    def name(self) -> str:
        return f"{self.call_id}_{self.seq:04d}"


def pii_spans(masked: str, duration_s: float) -> list[tuple[float, float]]:
    """Estimated clip times of the masked items in `masked`: speech runs at an even pace over the clip, so a
    label at characters [a, b) of n is spoken near [a/n, b/n] of the duration; widened by PII_MARGIN_S."""
    n = max(1, len(masked))
    out = []
    for m in _MASK_LABEL.finditer(masked):
        a = max(0.0, m.start() / n * duration_s - PII_MARGIN_S)
        b = min(duration_s, m.end() / n * duration_s + PII_MARGIN_S)
        out.append((round(a, 3), round(b, 3)))
    return out


def _overlaps(a: float, b: float, spans: Sequence[tuple[float, float]]) -> bool:
    return any(s < b and a < e for s, e in spans)


def cut_segments(call_id: str, caller: np.ndarray, rate: int, turns: Sequence[CallerTurn], *, offset_s: float,
                 masked_spans: Sequence[tuple[float, float]] = (), pii: PiiPolicy = "silence",
                 pad_s: float = PAD_S) -> tuple[list[Segment], list[dict[str, object]]]:
    """Pure core: the caller channel cut at each turn's stream times (+ `offset_s`, where stream time 0 sits in
    the recording). Returns the segments and the dropped turns with reasons."""
    segments: list[Segment] = []
    dropped: list[dict[str, object]] = []
    total = len(caller) / rate
    for turn in turns:
        text = mask_text(" ".join(turn.text.split()))
        start = max(0.0, turn.start + offset_s - pad_s)
        end = min(total, turn.end + offset_s + pad_s)

        def drop(reason: str, turn: CallerTurn = turn) -> None:
            dropped.append({"call_id": call_id, "seq": turn.seq, "reason": reason})

        if not text:
            drop("no text")
        elif end - start < MIN_SEGMENT_S:
            drop("outside the recording" if start >= total else "too short")
        elif _overlaps(start, end, masked_spans):
            drop("recording masked (keypad or card entry): audio and text disagree")
        else:
            clip = caller[int(start * rate):int(end * rate)].copy()
            spans = pii_spans(text, len(clip) / rate)
            if spans and pii == "drop":
                drop("personal data")
                continue
            for a, b in spans:
                clip[int(a * rate):int(b * rate)] = 0
            segments.append(Segment(call_id, turn.seq, text, round(start, 3), round(end, 3), clip, rate,
                                    turn.reviewed, spans))
    return segments, dropped


def sample_json(seg: Segment) -> dict[str, object]:
    """The fine-tuning sample: one caller segment, speaker 0, times within the clip."""
    duration = round(len(seg.audio) / seg.rate, 2)
    return {
        "audio_duration": duration,
        "audio_path": f"{seg.name}.wav",
        "segments": [{"speaker": 0, "text": seg.text, "start": 0.0, "end": duration}],  # the clip is one utterance
        "customized_context": [],
        # provenance (not read by the fine-tuning code)
        "call_id": seg.call_id, "seq": seg.seq, "call_start": seg.start, "call_end": seg.end,
        "reviewed": seg.reviewed, "silenced": [list(s) for s in seg.silenced],
    }


def write_segment(out: Path, split: Split, seg: Segment) -> dict[str, object]:
    directory = out / split
    directory.mkdir(parents=True, exist_ok=True)
    sf.write(str(directory / f"{seg.name}.wav"), seg.audio, seg.rate, subtype="PCM_16")
    sample = sample_json(seg)
    (directory / f"{seg.name}.json").write_text(json.dumps(sample, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"split": split, **{k: sample[k] for k in ("call_id", "seq", "audio_path", "audio_duration", "reviewed")},
            "text": seg.text}


# --- the database side ----------------------------------------------------------------------------------
def caller_turns(db: Database, call_id: str) -> list[CallerTurn]:
    """Caller turns with stream times, the reviewer's text where a correction exists."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT t.seq, t.text, t.detail, r.text AS reviewed FROM turns t LEFT JOIN transcript_reviews r"
            " ON r.call_id = t.call_id AND r.seq = t.seq WHERE t.call_id = %s AND t.speaker = 'caller'"
            " ORDER BY t.seq", (call_id,)).fetchall()
    out = []
    for r in rows:
        detail = r["detail"] or {}
        start, end = detail.get("start"), detail.get("end")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)) or end <= start:
            continue  # typed (DTMF) or injected turns have no audio times
        text = r["reviewed"] if r["reviewed"] is not None else (r["text"] or "")
        out.append(CallerTurn(r["seq"], text, float(start), float(end), r["reviewed"] is not None))
    return out


def stream_offset(db: Database, call_id: str) -> float:
    """Where the worker's stream time 0 sits in the recording: the fork connects after `uuid_record` starts."""
    with db.connection() as conn:
        rows = conn.execute("SELECT kind, min(at) AS at FROM call_events WHERE call_id = %s AND kind IN"
                            " ('recording_started', 'fork_connected') GROUP BY kind", (call_id,)).fetchall()
    at: dict[str, datetime] = {r["kind"]: r["at"] for r in rows}
    if "recording_started" in at and "fork_connected" in at:
        return max(0.0, (at["fork_connected"] - at["recording_started"]).total_seconds())
    return 0.0


def recorded_calls(db: Database, call_ids: Sequence[str] = ()) -> list[dict[str, object]]:
    with db.connection() as conn:
        if call_ids:
            return conn.execute("SELECT call_id, masked_spans, channels FROM recordings WHERE call_id = ANY(%s)"
                                " ORDER BY call_id", (list(call_ids),)).fetchall()
        return conn.execute("SELECT call_id, masked_spans, channels FROM recordings ORDER BY call_id").fetchall()


def export_dataset(db: Database, keyring: Keyring, out: Path, *, call_ids: Sequence[str] = (),
                   pii: PiiPolicy = "silence", dev: float = 0.1, test: float = 0.1) -> dict[str, object]:
    """Writes the dataset under `out`; returns counts per split and the dropped turns. Plain audio exists only
    in a private temporary directory while a call is cut."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, object]] = []
    dropped: list[dict[str, object]] = []
    counts = {s: 0 for s in SPLITS}
    calls = {s: 0 for s in SPLITS}
    for rec in recorded_calls(db, call_ids):
        call_id = str(rec["call_id"])
        turns = caller_turns(db, call_id)
        if not turns:
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="callagent-export-") as tmp:
                wav = export_recording(db, call_id, keyring, Path(tmp) / "call.wav")
                data, rate = sf.read(str(wav), dtype="int16", always_2d=True)
        except (RecordingKeyError, FileNotFoundError) as exc:  # one call's key or file must not stop the rest
            dropped.append({"call_id": call_id, "seq": None, "reason": f"recording does not open: {exc}"})
            continue
        if data.shape[1] < 2:
            dropped.append({"call_id": call_id, "seq": None, "reason": "mono recording: caller not apart"})
            continue
        spans = [(float(a), float(b)) for a, b in (rec["masked_spans"] or [])]  # type: ignore[union-attr]
        segs, lost = cut_segments(call_id, data[:, 0], int(rate), turns, offset_s=stream_offset(db, call_id),
                                  masked_spans=spans, pii=pii)
        dropped += lost
        split = split_of(call_id, dev, test)
        calls[split] += bool(segs)
        for seg in segs:
            manifest.append(write_segment(out, split, seg))
            counts[split] += 1
    lines = [json.dumps(m, ensure_ascii=False) for m in manifest]
    lines += [json.dumps({"dropped": True, **d}, ensure_ascii=False) for d in dropped]
    (out / "manifest.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return {"out": str(out), "segments": counts, "calls": calls, "dropped": len(dropped),
            "dropped_reasons": sorted({str(d["reason"]) for d in dropped})}


def read_split(directory: Path) -> list[dict[str, object]]:
    """The samples of one exported split (their JSON, with `audio_path` made absolute), sorted by name."""
    samples = []
    for path in sorted(directory.glob("*.json")):
        sample = json.loads(path.read_text(encoding="utf-8"))
        sample["audio_path"] = str(directory / str(sample["audio_path"]))
        samples.append(sample)
    return samples
