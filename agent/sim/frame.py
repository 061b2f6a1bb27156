"""One 20 ms media frame of a simulated channel (freeswitch.md §3.2, §4).

The write stream (what the caller hears: the playing file, -1s while paused) advances one frame; the read
stream (the caller's voice, plus line echo of what they heard) goes to the in-band DTMF detector, the
recordings and every media bug: mono = caller only, stereo = caller LEFT and write RIGHT, mixed = both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from agent.sim.media import EchoLine, packet_bytes

if TYPE_CHECKING:
    from agent.sim.channel import Channel


def deliver_frame(ch: Channel, source: Callable[[int], bytes], late: bool) -> None:
    """One 20 ms media frame: the write stream (what the caller hears) advances, the caller's read
    stream (their voice, plus line echo of what they hear) goes to every media bug."""
    po, k = ch.executor.tick(time.monotonic())
    writes: dict[int, np.ndarray] = {}
    reads: dict[int, bytes] = {}

    def write_at(rate: int) -> np.ndarray:
        if rate not in writes:
            writes[rate] = (po.frame(k, rate) if po is not None
                            else np.zeros(packet_bytes(rate) // 2, dtype=np.int16))
        return writes[rate]

    def read_at(rate: int) -> bytes:
        if rate not in reads:
            packet = source(rate)
            if ch.echo is not None:
                line = ch.echo_lines.get(rate)
                if line is None:
                    line = ch.echo_lines[rate] = EchoLine(rate, ch.echo.delay_ms, ch.echo.gain_db)
                packet = line.mix(packet, write_at(rate))
            reads[rate] = packet
        return reads[rate]

    if ch.inband_dtmf is not None:
        ch.detect_dtmf(read_at(ch.codec_rate))
    if ch.recorder.active:
        ch.recorder.feed(np.frombuffer(read_at(ch.codec_rate), dtype="<i2"), write_at(ch.codec_rate))
    after = ch.log.transfer is not None
    for bug in list(ch.bugs.values()):
        read = read_at(bug.rate)
        if bug.mix == "stereo":
            packet = interleave(read, write_at(bug.rate))
        elif bug.mix == "mixed" and po is not None:
            left = np.frombuffer(read, dtype="<i2").astype(np.int32)
            packet = np.clip(left + write_at(bug.rate), -32768, 32767).astype("<i2").tobytes()
        else:
            packet = read
        if bug.push(packet, late) and after:
            bug.log.bytes_after_transfer += len(packet)
            bug.log.packets_after_transfer += 1


def interleave(left: bytes, right: np.ndarray) -> bytes:
    """Stereo L16: caller (read) on the left, what the caller hears (write) on the right (§3.2)."""
    out = np.empty(len(right) * 2, dtype="<i2")
    out[0::2] = np.frombuffer(left, dtype="<i2")[:len(right)]
    out[1::2] = right
    return out.tobytes()
