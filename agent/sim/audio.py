"""Caller-side audio for the simulator: load, the phone channel's codec, resample, voiced region, espeak.

A real caller reaches FreeSWITCH as 8 kHz G.711 μ-law or A-law (PCMU/PCMA, freeswitch.md §9) or 16 kHz
G.722, and mod_audio_fork resamples that to the fork rate; `render` reproduces the band limit and the
G.711 grain (G.722's own coding noise is not modelled, only its 16 kHz band).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

CHANNEL_RATE = 8000
CODEC_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}
VOICED_DBFS = -40.0
ESPEAK_TIMEOUT_S = 20.0
RAW_RATES = {".r8": 8000, ".raw": 8000, ".r16": 16000, ".r24": 24000, ".r32": 32000}


class AudioError(ValueError):
    """An audio file the simulator cannot use (missing, unreadable, empty)."""


def load_mono(path: Path) -> tuple[np.ndarray, int]:
    """Reads any libsndfile format (wav, flac …) as float32 mono in [-1, 1]."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} is empty")
    return data.mean(axis=1).astype(np.float32), int(rate)


def file_duration_s(path: Path) -> float | None:
    """Playable length as mod_sndfile sees it: raw L16 by extension, else the libsndfile header."""
    raw_rate = RAW_RATES.get(path.suffix.lower())
    try:
        if raw_rate is not None:
            return path.stat().st_size / 2 / raw_rate
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    return info.frames / info.samplerate if info.samplerate else None


def mulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """G.711 μ-law encode + decode (the PCMU codec grain), float32 in and out."""
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int32)
    sign = pcm < 0
    mag = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    decoded = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return (np.where(sign, -decoded, decoded) / 32768.0).astype(np.float32)


def alaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """G.711 A-law encode + decode (the PCMA codec grain), float32 in and out."""
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int32) >> 3
    sign = pcm < 0
    mag = np.where(sign, -pcm - 1, pcm)
    seg = np.clip(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4, 0, 7)
    seg = np.where(mag < 32, 0, seg)
    mant = np.where(seg == 0, mag >> 1, (mag >> np.maximum(seg, 1)) & 0x0F)
    decoded = np.where(seg == 0, (mant << 1) + 1, ((mant << 1) + 33) << np.maximum(seg - 1, 0))
    return (np.where(sign, -decoded, decoded) * 8 / 32768.0).astype(np.float32)


def render(x: np.ndarray, rate: int, out_rate: int, *, codec: str | None) -> np.ndarray:
    """Caller audio as the fork sends it: int16 at `out_rate`, through the call's codec (None: no channel)."""
    y = x
    if codec is not None:
        channel_rate = CODEC_RATES[codec]
        if rate != channel_rate:
            y = soxr.resample(y, rate, channel_rate, quality="HQ")
        if codec == "PCMU":
            y = mulaw_roundtrip(y)
        elif codec == "PCMA":
            y = alaw_roundtrip(y)
        rate = channel_rate
    if rate != out_rate:
        y = soxr.resample(y, rate, out_rate, quality="HQ")
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype("<i2")


def voiced_region(x: np.ndarray, rate: int,
                  threshold_dbfs: float = VOICED_DBFS) -> tuple[float, float] | None:
    """Seconds of the first and last sample above `threshold_dbfs` (None for silence)."""
    idx = np.flatnonzero(np.abs(x) > 10.0 ** (threshold_dbfs / 20.0))
    if idx.size == 0:
        return None
    return idx[0] / rate, idx[-1] / rate


async def espeak_wav(text: str, out: Path, voice: str = "ko") -> Path:
    """Synthesizes `text` with espeak-ng into `out`: realistic timing for injected-text turns."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AudioError("espeak-ng is not installed; say_text needs it (apt-get install espeak-ng)")
    proc = await asyncio.create_subprocess_exec(
        exe, "-v", voice, "-w", str(out), "--", text,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), ESPEAK_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AudioError(f"espeak-ng took longer than {ESPEAK_TIMEOUT_S}s") from None
    if proc.returncode != 0 or not out.exists():
        raise AudioError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
    return out
