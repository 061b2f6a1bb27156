"""What the caller hears: one playing file handle, advanced 20 ms per media frame (switch_ivr_play_file).

The channel's media clock calls `tick()` once per frame; the file position moves only then, so a nested
command, a pause (`uuid_fileman … pause`, SWITCH_FILE_PAUSE) or a slow loop stops it the way the real
frame loop does. `segments` is the caller's heard timeline: contiguous stretches of audio with the file
offsets they covered. The samples feed the stereo fork's right channel and the simulated line echo.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from agent.sim.audio import RAW_RATES

PACKET_S = 0.02
PAUSED_SAMPLE = -1          # play_file fills a paused frame with memset(abuf, 255, …): int16 -1
VOLUME_GAIN = {1: 1.3, 2: 2.3, 3: 3.3, 4: 4.3, -1: 0.8, -2: 0.6, -3: 0.4, -4: 0.2}   # switch_change_sln_volume


def fs_can_read(path: Path, uid: int | None, gids: Iterable[int]) -> bool:
    """Whether user `freeswitch` (uid, gids) may open `path`: the mode bits as the kernel checks them,
    not whether this process can (the simulator often runs as the file's owner, or as root)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if uid is not None and st.st_uid == uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid in set(gids):
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def load_file(path: Path) -> tuple[np.ndarray, int] | None:
    """Samples as mod_sndfile reads them (raw L16 by extension, else libsndfile), float32 mono."""
    raw_rate = RAW_RATES.get(path.suffix.lower())
    try:
        if raw_rate is not None:
            pcm = np.frombuffer(path.read_bytes()[: os.path.getsize(path) // 2 * 2], dtype="<i2")
            return pcm.astype(np.float32) / 32768.0, raw_rate
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    if data.shape[0] == 0 or not rate:
        return None
    return data.mean(axis=1).astype(np.float32), int(rate)


@dataclass
class Segment:
    """A stretch the caller heard without a gap: monotonic times and the file offsets it covered."""

    t_start: float
    t_end: float
    from_ms: int
    to_ms: int


class Playout:
    """One open file handle (or a silence stream) played to the caller, frame by frame."""

    def __init__(self, audio: np.ndarray | None, rate: int, duration_s: float, channel_rate: int):
        """audio None = silence_stream; duration_s < 0 = forever."""
        self._audio = audio
        self._rate = rate
        self.channel_rate = channel_rate
        self.duration_s = duration_s
        self.frames = 0                 # frames played (the file position, in 20 ms frames)
        self.paused = False
        self.vol = 0
        self.done = False
        self.stopped = False            # `uuid_fileman … stop`: SWITCH_FILE_DONE
        self.segments: list[Segment] = []
        self._open: Segment | None = None
        self._rendered: dict[int, np.ndarray] = {}

    @property
    def position_ms(self) -> int:
        return int(round(self.frames * PACKET_S * 1000))

    def _total_frames(self) -> float:
        return float("inf") if self.duration_s < 0 else self.duration_s / PACKET_S

    def rendered(self, rate: int) -> np.ndarray:
        """The file at `rate` as the write stream carries it (resampled to the channel rate first)."""
        if rate not in self._rendered:
            if self._audio is None:
                self._rendered[rate] = np.zeros(0, dtype=np.int16)
            else:
                y = self._audio
                if self._rate != self.channel_rate:
                    y = soxr.resample(y, self._rate, self.channel_rate, quality="HQ")
                if self.channel_rate != rate:
                    y = soxr.resample(y, self.channel_rate, rate, quality="HQ")
                self._rendered[rate] = np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)
        return self._rendered[rate]

    def tick(self, now: float, period: float = PACKET_S) -> int | None:
        """One media frame: returns the frame index played, or None (paused, done). Updates the timeline."""
        if self.done:
            return None
        if self.stopped or self.frames >= self._total_frames():
            self.done = True
            self._close()
            return None
        if self.paused:
            self._close()
            return None
        k = self.frames
        self.frames += 1
        if self._open is None:
            self._open = Segment(now, now, k * 20, k * 20)
            self.segments.append(self._open)
        self._open.t_end = now + period     # the frame lasts one media period (wall time)
        self._open.to_ms = self.frames * 20
        if self.frames >= self._total_frames():
            self.done = True
            self._open = None
        return k

    def _close(self) -> None:
        if self._open is not None:
            self._open = None

    def finish(self) -> None:
        self.done = True
        self._close()

    def frame(self, k: int | None, rate: int) -> np.ndarray:
        """Frame `k` at `rate` (int16); silence when None, -1s while paused (what play_file writes)."""
        n = int(round(rate * PACKET_S))
        if k is None:
            fill = PAUSED_SAMPLE if self.paused and not self.done else 0
            return np.full(n, fill, dtype=np.int16)
        audio = self.rendered(rate)
        out = np.zeros(n, dtype=np.int16)
        chunk = audio[k * n:(k + 1) * n]
        out[:len(chunk)] = chunk
        gain = VOLUME_GAIN.get(max(-4, min(4, self.vol)))
        if gain is not None:
            out = np.clip(out.astype(np.float32) * gain, -32768, 32767).astype(np.int16)
        return out

    def command(self, cmd: str) -> None:
        """switch_ivr_process_fh: pause (toggle), volume:±N, seek:±ms / seek:ms, restart, stop, speed."""
        low = cmd.lower()
        _, _, val = cmd.partition(":")
        if low == "pause":
            self.paused = not self.paused
        elif low.startswith("volume") and val:
            step = _atoi(val)
            self.vol = self.vol + (step or 1) if val[:1] in "+-" else step
        elif low.startswith("seek") and val:
            relative = val[:1] in "+-"
            target_ms = max(0, self.position_ms + (_atoi(val) or 1000) if relative else _atoi(val))
            self.frames = int(target_ms / 1000 / PACKET_S)
            self._close()
        elif low == "restart":
            self.frames = 0
            self._close()
        elif low == "stop":
            self.stopped = True


def _atoi(text: str) -> int:
    digits = ""
    for i, c in enumerate(text.strip()):
        if c.isdigit() or (i == 0 and c in "+-"):
            digits += c
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0
