"""The caller's side of the media stream: a 20 ms clock that never stops while the channel is up.

A real channel keeps sending packets whether or not the caller talks (freeswitch.md §3.2, §9), so the
clock emits silence between utterances; each utterance's first and last voiced packet is timestamped
when that packet is handed to the fork bugs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from agent.sim.audio import render, voiced_region
from agent.sim.log import Utterance

PACKET_S = 0.02

PacketSource = Callable[[int], bytes]          # rate → this packet's L16 LE bytes at that rate
Deliver = Callable[[PacketSource, bool], None]  # (packet source, sent more than one period late)


def packet_bytes(rate: int) -> int:
    return int(round(rate * PACKET_S)) * 2


class _Speech:
    def __init__(self, audio: np.ndarray, rate: int, utt: Utterance, codec: str | None):
        self.audio = audio
        self.rate = rate
        self.utt = utt
        self.codec = codec
        self.packets = max(1, math.ceil(len(audio) / rate / PACKET_S))
        region = voiced_region(audio, rate)
        self.first_k = None if region is None else int(region[0] / PACKET_S)
        self.last_k = None if region is None else int(region[1] / PACKET_S)
        self.pos = 0
        self.done = asyncio.Event()
        self._rendered: dict[int, bytes] = {}

    def rendered(self, rate: int) -> bytes:
        if rate not in self._rendered:
            pcm = render(self.audio, self.rate, rate, codec=self.codec).tobytes()
            need = self.packets * packet_bytes(rate)
            self._rendered[rate] = pcm[:need].ljust(need, b"\0")
        return self._rendered[rate]


class Mouth:
    """Queues caller utterances and paces 20 ms packets (divided by `speed`) to whoever listens."""

    def __init__(self, *, speed: float, codec: str | None, deliver: Deliver,
                 rates: Callable[[], list[int]], on_done: Callable[[], None] = lambda: None):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.period = PACKET_S / speed
        self.codec = codec
        self._deliver = deliver
        self._rates = rates
        self._on_done = on_done
        self._queue: deque[_Speech] = deque()
        self._current: _Speech | None = None
        self._running = True       # until stop(); say() after that completes at once

    @property
    def speaking(self) -> bool:
        return self._current is not None or bool(self._queue)

    def say(self, audio: np.ndarray, rate: int, utt: Utterance) -> asyncio.Event:
        """Queues one utterance; the returned event is set after its last packet went out."""
        speech = _Speech(audio, rate, utt, self.codec)
        for r in self._rates():
            speech.rendered(r)     # render now, not inside the packet clock
        self._queue.append(speech)
        if not self._running:
            speech.done.set()      # no clock (the call is over): nothing will ever stream it
        return speech.done

    def stop(self) -> None:
        self._running = False
        for speech in [self._current, *self._queue]:
            if speech is not None:
                speech.done.set()
        self._current = None
        self._queue.clear()

    async def run(self) -> None:
        """The packet clock; runs until stop(). Absolute deadlines keep it from drifting."""
        t0 = time.monotonic()
        n = 0
        while self._running:
            due = t0 + n * self.period
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self._running:
                break
            late = time.monotonic() - due > self.period
            self._deliver(self._next_packet(), late)
            n += 1

    def _next_packet(self) -> PacketSource:
        if self._current is None and self._queue:
            self._current = self._queue.popleft()
        speech = self._current
        if speech is None:
            return _silence
        k = speech.pos
        speech.pos += 1
        now = time.monotonic()
        if k == speech.first_k:
            speech.utt.t_first_voiced = now
        if k == speech.last_k:
            speech.utt.t_last_voiced = now
        if speech.pos >= speech.packets:
            speech.utt.t_end = now
            self._current = None
            speech.done.set()
            self._on_done()

        def source(rate: int) -> bytes:
            size = packet_bytes(rate)
            return speech.rendered(rate)[k * size:(k + 1) * size]
        return source


def _silence(rate: int) -> bytes:
    return b"\0" * packet_bytes(rate)


class EchoLine:
    """Line/handset echo at one rate: what the caller hears comes back `delay_ms` later, `gain_db` down."""

    def __init__(self, rate: int, delay_ms: int, gain_db: float):
        self.delay = int(rate * delay_ms / 1000)
        self.gain = 10.0 ** (gain_db / 20.0)
        self._history = np.zeros(self.delay, dtype=np.float32)

    def mix(self, read: bytes, write: np.ndarray | None) -> bytes:
        voice = np.frombuffer(read, dtype="<i2").astype(np.float32)
        heard = np.zeros(len(voice), dtype=np.float32) if write is None else write.astype(np.float32)
        line = np.concatenate([self._history, heard])
        echo = line[:len(voice)]
        self._history = line[len(voice):]
        return np.clip(np.round(voice + self.gain * echo), -32768, 32767).astype("<i2").tobytes()
