"""Voice-to-voice from the stored latency parts: shared by the post-call analytics and the live histograms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def voice_to_voice_ms(caller: Mapping[str, Any] | None, reply: Mapping[str, Any]) -> float | None:
    """End-of-speech wait + ASR wait after it + transcript → PLAYBACK_START, from the stored parts.

    The ASR wait is the caller turn's `detail.asr_wait_ms` when stored (decoding that ran during the speech
    or the silence does not delay the reply), else its full `asr_ms`.
    """
    first_audio = reply.get("first_audio_ms")
    eos_wait = reply.get("eos_wait_ms")
    if first_audio is None or eos_wait is None:
        return None
    asr_wait = reply.get("asr_ms") or 0.0
    if caller is not None:
        detail = caller.get("detail") or {}
        if detail.get("asr_wait_ms") is not None:
            asr_wait = float(detail["asr_wait_ms"])
    return float(eos_wait) + float(asr_wait) + float(first_audio)
