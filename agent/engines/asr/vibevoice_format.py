"""VibeVoice-ASR prompt wording and a tolerant reader of its compact JSON output (docs/models.md, "Output").

Shared by the vLLM, transformers and streaming engines. Pure: no I/O, no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from agent.engines.asr.base import AsrResult, AsrSegment

SAMPLE_RATE = 24000  # the model's only input rate; callers upsample telephony audio to it
SYSTEM_PROMPT = "You are a helpful assistant that transcribes audio input into text output in JSON format."
_KEYS_SENTENCE = "Please transcribe it with these keys: Start time, End time, Speaker ID, Content"

# Both spellings occur: the training target uses the short keys, the processor's prompt the long ones.
_START_KEYS = ("Start", "Start time", "start_time", "start")
_END_KEYS = ("End", "End time", "end_time", "end")
_SPEAKER_KEYS = ("Speaker", "Speaker ID", "speaker_id", "speaker")
_TEXT_KEYS = ("Content", "text", "content")

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)(?:```|$)", re.DOTALL)
_SPEAKER_PREFIX_RE = re.compile(r"^\s*Speaker\s*(\d+)\s*:\s*")
# Non-speech tags the model writes inside Content, e.g. [Noise], [Laughter], [Music].
_TAG_RE = re.compile(r"\[[A-Za-z][A-Za-z _-]{0,30}\]")
# A phrase repeated 6+ times in a row: the decoding loop the token cap cuts off (issues #193, #227).
_LOOP_RE = re.compile(r"(.{1,40}?)(?:[\s,.]*\1){5,}", re.DOTALL)


def user_prompt(duration_s: float, context: str = "") -> str:
    """The user-turn text the model was trained on; `context` (hotwords, names) switches the wording."""
    context = context.strip()
    if context:
        return f"This is a {duration_s:.2f} seconds audio, with extra info: {context}\n\n{_KEYS_SENTENCE}"
    return f"This is a {duration_s:.2f} seconds audio, please transcribe it with these keys: " \
           "Start time, End time, Speaker ID, Content"


def token_budget(duration_s: float, cap: int) -> int:
    """max_tokens for one utterance: enough for fast Korean speech plus the JSON keys, and small enough
    that a repetition loop ends within a second or two instead of running to the configured cap."""
    # Fast Korean is ~8 syllables/s, about as many tokens, plus ~25 tokens of JSON per segment: 20 per second.
    return max(16, min(cap, 64 + math.ceil(20 * duration_s)))


def _keep_one(match: re.Match[str]) -> str:
    unit = match.group(1).strip()
    # Digit runs are account and phone numbers ("00000"), and one-syllable units are backchannels ("네네네").
    if len(unit) < 2 or unit.isdigit():
        return match.group(0)
    return match.group(1)


def collapse_loops(text: str) -> str:
    """'malo, malo, … ×20' becomes 'malo'; digit runs, '네 네 네' and phrases said up to 5 times stay."""
    return _LOOP_RE.sub(_keep_one, text)


def spoken_text(text: str) -> str:
    """Content without non-speech tags and with loops collapsed: what the caller actually said."""
    return " ".join(collapse_loops(_TAG_RE.sub(" ", text)).split())


def _number(seg: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = seg.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip().rstrip("s"))
            except ValueError:
                continue
    return None


def _speaker(seg: Mapping[str, Any]) -> int | None:
    value = _number(seg, _SPEAKER_KEYS)
    return int(value) if value is not None else None


def segment_from_object(seg: Mapping[str, Any], duration_s: float | None = None) -> AsrSegment | None:
    """One output object → AsrSegment; None if it has no text. Times are clamped into the utterance."""
    text = next((seg[k] for k in _TEXT_KEYS if isinstance(seg.get(k), str)), None)
    if text is None or not text.strip():
        return None
    start = _number(seg, _START_KEYS) or 0.0
    end = _number(seg, _END_KEYS)
    if duration_s is not None:
        start = min(max(start, 0.0), duration_s)
        end = duration_s if end is None else min(max(end, start), duration_s)
    elif end is None or end < start:
        end = start
    return AsrSegment(text=" ".join(text.split()), start=start, end=end, speaker=_speaker(seg))


def segments_from_objects(objects: Iterable[Any], duration_s: float | None = None) -> list[AsrSegment]:
    """Objects → segments, dropping non-dicts, empty ones and consecutive exact repeats (a loop symptom)."""
    out: list[AsrSegment] = []
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        seg = segment_from_object(obj, duration_s)
        if seg is None or (out and out[-1].text == seg.text and out[-1].speaker == seg.speaker):
            continue
        out.append(seg)
    return out


def _strip_wrapping(text: str) -> str:
    text = text.strip()
    # The model writes its role name when special tokens are skipped (HF port docstring).
    if text.startswith("assistant"):
        text = text[len("assistant"):].lstrip(" :\n")
    fence = _FENCE_RE.search(text)
    if fence and "[" in fence.group(1) + "{":
        text = fence.group(1).strip()
    return text


def _complete_objects(text: str, start: int) -> list[Any]:
    """Decodes objects one by one after `start`; stops at the first incomplete one (max_tokens hit)."""
    decoder = json.JSONDecoder()
    objects: list[Any] = []
    pos = start
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        objects.append(obj)
    return objects


def parse_objects(raw: str) -> tuple[list[Any], bool]:
    """The JSON objects in a raw completion, and whether the output was JSON-shaped at all."""
    text = _strip_wrapping(raw)
    bracket, brace = text.find("["), text.find("{")
    if bracket < 0 and brace < 0:
        return [], False
    if bracket >= 0 and (brace < 0 or bracket < brace):
        try:
            value = json.loads(text[bracket:])
            return (value if isinstance(value, list) else [value]), True
        except json.JSONDecodeError:
            return _complete_objects(text, bracket + 1), True
    return _complete_objects(text, brace), True


def parse_transcription(raw: str, duration_s: float | None = None) -> list[AsrSegment]:
    """Tolerant reader for `[{"Start":0.0,"End":1.2,"Speaker":0,"Content":"…"}]`: accepts an `assistant`
    prefix, code fences, a truncated array (keeps the complete objects), repeated segments and loops.
    Plain text that is not JSON at all becomes one segment spanning the utterance."""
    objects, json_shaped = parse_objects(raw)
    if json_shaped:
        segments = segments_from_objects(objects, duration_s)
    else:
        plain = _strip_wrapping(raw)
        speaker_match = _SPEAKER_PREFIX_RE.match(plain)
        speaker = int(speaker_match.group(1)) if speaker_match else None
        plain = _SPEAKER_PREFIX_RE.sub("", plain).strip()
        end = duration_s if duration_s is not None else 0.0
        segments = [AsrSegment(text=" ".join(plain.split()), start=0.0, end=end, speaker=speaker)] if plain else []
    return [
        AsrSegment(text=collapse_loops(s.text), start=s.start, end=s.end, speaker=s.speaker) for s in segments
    ]


def split_speaker_prefix(text: str) -> tuple[int | None, str]:
    """'Speaker 1: 네 맞아요' → (1, '네 맞아요'): the streaming model's per-chunk text form."""
    match = _SPEAKER_PREFIX_RE.match(text)
    if not match:
        return None, text.strip()
    return int(match.group(1)), text[match.end():].strip()


def to_result(segments: Iterable[AsrSegment], engine: str) -> AsrResult:
    """Joins segment texts (tags removed) into the utterance text the dialog sees."""
    segs = tuple(segments)
    text = " ".join(t for t in (spoken_text(s.text) for s in segs) if t)
    return AsrResult(text=text, engine=engine, segments=segs)
