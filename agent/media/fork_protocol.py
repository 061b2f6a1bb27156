"""mod_audio_fork framing on the worker side (freeswitch.md §3.2, §3.3, §9), pure: no sockets.

Parses the metadata text frame, reassembles the L16 byte stream into 20 ms frames, and builds every JSON
message the worker sends back (FreeSWITCH turns each into a CUSTOM `mod_audio_fork::*` event).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.engines.asr.base import AsrSegment

SUBPROTOCOL = "audio.drachtio.org"
SUPPORTED_RATES = (8000, 16000)  # the VAD runs at these; the controller asks for one of them
SUPPORTED_CHANNELS = (1, 2)  # mono (caller only) or stereo (caller + what the caller hears)
MAX_METADATA_BYTES = 8192  # mod_audio_fork caps initial metadata here, so anything longer is not from it
INJECT_TYPE = "callagent.inject"
CLOSE_POLICY_VIOLATION = 1008

SOURCE_ASR = "asr"
SOURCE_INJECTED = "text-injected"


class ProtocolError(ValueError):
    """A frame from FreeSWITCH breaks the protocol; the message says what and why."""


@dataclass(frozen=True)
class ForkMetadata:
    call_id: str
    rate: int
    industry: str = ""
    tenant: str = "default"
    lang: str = "ko"
    hotwords: tuple[str, ...] = ()  # per-call extras (tenant terms) the controller may pass along
    token: str = ""  # per-call secret; the server verifies it before accepting the fork
    channels: int = 1  # 2: stereo fork, caller LEFT, what the caller hears RIGHT (interleaved L16)


@dataclass(frozen=True)
class Inject:
    """A test/demo transcript delivered as text in place of recognised speech."""

    text: str


def _opt_str(data: dict[str, Any], name: str, default: str) -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ProtocolError(f"metadata '{name}' must be a string, got {value!r}")
    return value


def parse_metadata(text: str, *, fallback_call_id: str = "") -> ForkMetadata:
    """Validates the first text frame. `fallback_call_id` (the URL path's uuid) is used when it has none."""
    if len(text.encode("utf-8")) > MAX_METADATA_BYTES:
        raise ProtocolError(f"metadata is longer than {MAX_METADATA_BYTES} bytes")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"metadata is not JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"metadata must be a JSON object, got {type(data).__name__}")
    if "rate" not in data:
        raise ProtocolError("metadata lacks 'rate'; the sample rate cannot be known otherwise")
    rate = data["rate"]
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise ProtocolError(f"metadata 'rate' must be an integer, got {rate!r}")
    if rate not in SUPPORTED_RATES:
        raise ProtocolError(f"unsupported sample rate {rate}; only 8000 and 16000 are accepted")
    call_id = _opt_str(data, "call_id", fallback_call_id) or fallback_call_id
    if not call_id:
        raise ProtocolError("metadata lacks 'call_id' and the URL path carries none")
    hotwords = data.get("hotwords", [])
    if not isinstance(hotwords, list) or not all(isinstance(h, str) for h in hotwords):
        raise ProtocolError("metadata 'hotwords' must be a list of strings")
    channels = data.get("channels", 1)
    if isinstance(channels, bool) or channels not in SUPPORTED_CHANNELS:
        raise ProtocolError(f"metadata 'channels' must be 1 (mono) or 2 (stereo), got {channels!r}")
    return ForkMetadata(
        call_id=call_id,
        rate=rate,
        industry=_opt_str(data, "industry", ""),
        tenant=_opt_str(data, "tenant", "default"),
        lang=_opt_str(data, "lang", "ko"),
        hotwords=tuple(hotwords),
        token=_opt_str(data, "token", ""),
        channels=channels,
    )


def parse_client_text(text: str) -> Inject | None:
    """An injection request, or None for any other text (send_text JSON, `{"final":true}`, …)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("type") != INJECT_TYPE:
        return None
    value = data.get("text")
    if not isinstance(value, str):
        raise ProtocolError(f"'{INJECT_TYPE}' needs a string 'text', got {value!r}")
    return Inject(value)


class FrameAssembler:
    """Cuts the binary stream into fixed frames whatever the message boundaries (merged packets, odd bytes)."""

    def __init__(self, frame_bytes: int):
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ValueError(f"frame size must be a positive even byte count, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back until the next message completes a frame."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes]:
        n = self.frame_bytes
        if not self._pending and len(data) == n:
            return [bytes(data)]  # the usual case: one 20 ms packet per message, no copying
        self._pending += data
        whole = len(self._pending) - len(self._pending) % n
        if not whole:
            return []
        frames = [bytes(self._pending[i:i + n]) for i in range(0, whole, n)]
        del self._pending[:whole]
        return frames


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _s(seconds: float) -> float:
    return round(seconds, 3)


def speech_onset(utterance: int, at: float) -> str:
    """Early voice, before min speech confirms it: the controller may barge in on it, never take a turn."""
    return _dump({"type": "json", "event": "speech_onset", "utterance": utterance, "at": _s(at)})


def speech_started(utterance: int, at: float) -> str:
    """`at` is where the voiced run began (the onset), though it is sent once min speech confirmed it."""
    return _dump({"type": "json", "event": "speech_started", "utterance": utterance, "at": _s(at)})


def speech_ended(utterance: int, start: float, end: float, *, eos_wait_ms: int | None = None,
                 eot: dict[str, Any] | None = None, text: str | None = None, source: str = SOURCE_ASR) -> str:
    """The end of turn was decided. `eot` and `eos_wait_ms` as in the final; `text` (only while a
    `turn_preview` of this utterance stands) is the transcript the decision read, from `source`: a held reply
    prepared from the same words can play now, before the final pass."""
    message: dict[str, Any] = {"type": "json", "event": "speech_ended", "utterance": utterance,
                               "start": _s(start), "end": _s(end)}
    if eos_wait_ms is not None:
        message["eos_wait_ms"] = eos_wait_ms
    if eot is not None:
        message["eot"] = eot
    if text is not None:
        message["text"] = text
        message["source"] = source
    return _dump(message)


def transcript(utterance: int, text: str, *, source: str, engine: str, start: float, end: float,
               eos_wait_ms: float, asr_ms: float, segments: Sequence[AsrSegment] = (),
               final: bool = True, asr_wait_ms: float | None = None, eot: dict[str, Any] | None = None) -> str:
    """`segments` carry stream seconds (the caller adds the utterance's audio offset). `asr_wait_ms` is how
    long the transcript took after the end of speech was decided: less than `asr_ms` when ASR started
    speculatively during the silence. `eot` (finals only): why and when the turn was taken as ended."""
    data = {
        "event": "transcript",
        "utterance": utterance,
        "final": final,
        "text": text,
        "source": source,
        "engine": engine,
        "start": _s(start),
        "end": _s(end),
        "eos_wait_ms": round(eos_wait_ms),
        "asr_ms": round(asr_ms),
        "asr_wait_ms": round(asr_ms if asr_wait_ms is None else asr_wait_ms),
        "segments": [
            {"text": seg.text, "start": _s(seg.start), "end": _s(seg.end), "speaker": seg.speaker}
            for seg in segments
        ],
    }
    if eot is not None:
        data["eot"] = eot
    return _dump({"type": "transcription", "data": data})


def _event(event: str, utterance: int, at: float, **fields: object) -> str:
    return _dump({"type": "json", "event": event, "utterance": utterance, "at": _s(at), **fields})


def speech_dropped(utterance: int, at: float, voiced_ms: int) -> str:
    """An onset that never became speech (cough, click): the controller resumes what it paused."""
    return _event("speech_dropped", utterance, at, voiced_ms=voiced_ms)


def speech_paused(utterance: int, at: float, voiced_ms: int) -> str:
    return _event("speech_paused", utterance, at, voiced_ms=voiced_ms)


def speech_continuing(utterance: int, at: float, voiced_ms: int) -> str:
    """Enough voiced audio to be a real interruption, not a backchannel."""
    return _event("speech_continuing", utterance, at, voiced_ms=voiced_ms)


def turn_preview(utterance: int, text: str, at: float) -> str:
    """The transcript so far looks like a complete turn: work may start, audio waits for the final."""
    return _dump({"type": "json", "event": "turn_preview", "utterance": utterance, "text": text, "at": _s(at)})


def turn_resumed(utterance: int, at: float) -> str:
    """The caller spoke again after a turn_preview: preemptive work for it is void."""
    return _event("turn_resumed", utterance, at)


def heartbeat(seq: int, audio_ms: int, at: float) -> str:
    return _dump({"type": "json", "event": "heartbeat", "seq": seq, "audio_ms": audio_ms, "at": _s(at)})


def asr_error(utterance: int, reason: str, retryable: bool) -> str:
    return _dump({"type": "json", "event": "asr_error", "utterance": utterance, "reason": reason,
                  "retryable": retryable})


def error(reason: str) -> str:
    return _dump({"type": "error", "data": {"reason": reason}})
