"""`uuid_record` media bugs: real WAV files of the call (switch_ivr_record_session_event, freeswitch.md §4).

Mono mixes the caller (read) and what the caller hears (write) at the channel rate; the channel variable
RECORD_STEREO=true puts the caller LEFT and the write stream RIGHT. `mask` writes silence until `unmask`
(SMBF_MASK: null_data instead of the frame), the PCI "pause and resume". RECORD_START fires when the bug
starts, RECORD_STOP (with record_ms set) when it stops or the channel hangs up; both carry
`Record-File-Path` and need `event plain RECORD_START RECORD_STOP` on the socket (not in myevents).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from agent.sim.fsutil import is_true

if TYPE_CHECKING:
    from agent.sim.channel import Channel


@dataclass
class RecordLog:
    """One recording: where, how, and when it was masked."""

    path: str
    channels: int
    rate: int
    t_start: float
    t_stop: float | None = None
    frames: int = 0                                   # 20 ms frames written
    masked: list[list[float]] = field(default_factory=list)   # [t_mask, t_unmask or None]
    masked_frames: list[list[int]] = field(default_factory=list)  # the same as frame indices in the file


class _Recording:
    def __init__(self, path: Path, channels: int, rate: int, limit_s: int, log: RecordLog):
        self.file = sf.SoundFile(str(path), mode="w", samplerate=rate, channels=channels, subtype="PCM_16",
                                 format="WAV")
        self.channels = channels
        self.limit_frames = limit_s * 50 if limit_s > 0 else 0
        self.masked = False
        self.paused = False
        self.log = log


class Recorder:
    def __init__(self, channel: Channel):
        self.ch = channel
        self._active: dict[str, _Recording] = {}

    def start(self, path: str, limit_s: int = 0) -> bool:
        target = Path(path)
        if path in self._active or not target.parent.is_dir():
            return False
        channels = 2 if is_true(self.ch.lookup("RECORD_STEREO")) else 1
        rate = int(self.ch.lookup("record_sample_rate") or self.ch.codec_rate)
        log = RecordLog(path=path, channels=channels, rate=rate, t_start=time.monotonic())
        try:
            rec = _Recording(target, channels, rate, limit_s, log)
        except (sf.LibsndfileError, RuntimeError, OSError):
            return False
        self._active[path] = rec
        self.ch.log.recordings.append(log)
        self.ch.fire("RECORD_START", [("Record-File-Path", path)])
        return True

    def stop(self, path: str) -> bool:
        """`stop <path>`, or `stop all`."""
        paths = list(self._active) if path == "all" else [path] if path in self._active else []
        for p in paths:
            self._close(p)
        return bool(paths)

    def stop_all(self) -> None:
        for p in list(self._active):
            self._close(p)

    def mask(self, path: str, on: bool, *, pause: bool = False) -> bool:
        """mask: silence frames in the file; pause: no frames at all (the file gets shorter)."""
        rec = self._active.get(path)
        if rec is None:
            return False
        if pause:
            rec.paused = on
            return True
        if on and not rec.masked:
            rec.log.masked.append([time.monotonic(), None])  # type: ignore[list-item]
            rec.log.masked_frames.append([rec.log.frames, -1])
        elif not on and rec.masked:
            rec.log.masked[-1][1] = time.monotonic()
            rec.log.masked_frames[-1][1] = rec.log.frames
        rec.masked = on
        return True

    def feed(self, read: np.ndarray, write: np.ndarray) -> None:
        """One frame at the channel rate: caller audio and what the caller hears (int16)."""
        for path, rec in list(self._active.items()):
            if rec.paused:
                continue
            if rec.masked:
                data = np.zeros((len(read), rec.channels), dtype=np.int16)
            elif rec.channels == 2:
                data = np.stack([read, write], axis=1)
            else:
                mix = np.clip(read.astype(np.int32) + write.astype(np.int32), -32768, 32767)
                data = mix.astype(np.int16)[:, None]
            rec.file.write(data)
            rec.log.frames += 1
            if rec.limit_frames and rec.log.frames >= rec.limit_frames:
                self._close(path)

    @property
    def active(self) -> bool:
        return bool(self._active)

    def _close(self, path: str) -> None:
        rec = self._active.pop(path)
        rec.file.close()
        rec.log.t_stop = time.monotonic()
        if rec.masked:
            rec.log.masked[-1][1] = rec.log.t_stop
            rec.log.masked_frames[-1][1] = rec.log.frames
        ms = rec.log.frames * 20
        self.ch.variables.update(record_samples=str(ms * rec.log.rate // 1000), record_seconds=str(ms // 1000),
                                 record_ms=str(ms))
        self.ch.fire("RECORD_STOP", [("Record-File-Path", path)])
