"""The playback spool: per-call directories of 16-bit mono WAV files that FreeSWITCH plays by path.

Files appear atomically (temp file + rename), so a `uuid_broadcast` never opens a half-written file.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr

from agent.engines.errors import EngineError
from agent.engines.tts.base import AudioChunk

# Names and paths go into `uuid_broadcast <uuid> {utt_id=U,chunk=K}<path> aleg`: no spaces, quotes,
# braces or commas, which would split or break the argument.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+@:-]+")
MIN_RATE, MAX_RATE = 8000, 48000
# FreeSWITCH usually runs as its own user: the files must be readable by others.
FILE_MODE = 0o644


class SpoolError(EngineError):
    """A spool or prompt-cache directory cannot be created or written; speech cannot be played."""

    def __init__(self, path: Path, message: str):
        super().__init__("spool", f"{path}: {message}")
        self.path = path


def check_name(kind: str, value: str) -> str:
    """Raises ValueError unless `value` is safe as a file name inside a FreeSWITCH argument."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{kind} {value!r} is not a safe file name (letters, digits, '_', '-', '.')")
    return value


def check_rate(rate: int) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"sample rate must be an integer from {MIN_RATE} to {MAX_RATE}, got {rate!r}")
    return rate


def safe_dir_path(root: Path, what: str) -> Path:
    """`root` made absolute (FreeSWITCH prefixes relative paths) and checked for unsafe characters."""
    root = Path(root).absolute()
    if not _SAFE_PATH.fullmatch(str(root)):
        raise SpoolError(root, f"the {what} path has characters FreeSWITCH cannot take in a playback "
                               "argument (use letters, digits, '_', '-', '.', '/')")
    return root


def playable_dir(root: Path, what: str) -> Path:
    """`safe_dir_path(root)`, created with its parents if missing."""
    root = safe_dir_path(root, what)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpoolError(root, f"cannot create the {what} directory: {exc.strerror or exc}") from exc
    return root


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Mono int16 at `from_rate` -> mono int16 at `to_rate` (soxr, high quality)."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError(f"audio must be mono (1-D), got shape {pcm.shape}")
    if pcm.dtype != np.int16:
        raise ValueError(f"audio must be int16, got {pcm.dtype}")
    if from_rate == to_rate or len(pcm) == 0:
        return pcm
    return soxr.resample(pcm, from_rate, to_rate, quality="HQ")


def write_wav_atomic(path: Path, pcm: np.ndarray, rate: int) -> Path:
    """Writes 16-bit mono PCM WAV to `path` through a temp file in the same directory and a rename."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise SpoolError(path.parent, f"cannot write audio here: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        os.chmod(tmp, FILE_MODE)
        # No fsync: FreeSWITCH reads it from the page cache on this host within milliseconds.
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SpoolError(path, f"cannot write audio: {exc.strerror or exc}") from exc
        raise
    return path


class Spool:
    """`root/<call_id>/<name>.wav`; the call's directory goes away with `cleanup` when the call ends."""

    def __init__(self, root: Path):
        self.root = safe_dir_path(root, "spool")

    def check(self) -> None:
        """Start-up check: the root exists (created if missing) and this process can write files in it."""
        root = playable_dir(self.root, "spool")
        try:
            with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise SpoolError(root, f"the spool directory is not writable: {exc.strerror or exc}") from exc

    def call_dir(self, call_id: str) -> Path:
        check_name("call_id", call_id)
        path = self.root / call_id
        try:
            path.mkdir(exist_ok=True)
            return path
        except OSError as exc:
            if self.root.is_dir():
                raise SpoolError(path, f"cannot create the call's directory: {exc.strerror or exc}") from exc
        playable_dir(self.root, "spool")  # the root is missing (never made, or removed): create it
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise SpoolError(path, f"cannot create the call's directory: {exc.strerror or exc}") from exc
        return path

    def write(self, call_id: str, name: str, chunk: AudioChunk, rate: int) -> Path:
        """Resamples `chunk` to `rate`, writes `<name>.wav` in the call's directory, returns its path."""
        check_rate(rate)
        check_name("name", name)
        if not name.endswith(".wav"):
            name += ".wav"
        pcm = resample(chunk.pcm, chunk.sample_rate, rate)
        return write_wav_atomic(self.call_dir(call_id) / name, pcm, rate)

    def cleanup(self, call_id: str) -> None:
        """Removes the call's directory and everything in it; a missing directory is fine."""
        check_name("call_id", call_id)
        shutil.rmtree(self.root / call_id, ignore_errors=True)
