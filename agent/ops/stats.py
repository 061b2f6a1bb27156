"""In-process counters of the controller, read by `callagent bench` and exported as Prometheus metrics."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ControllerStats:
    turns: int = 0
    barge_ins: int = 0
    escalations: Counter[str] = field(default_factory=Counter)
    overhead_ms: list[float] = field(default_factory=list)
    first_audio_ms: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_turn(self, overhead_ms: float, first_audio_ms: float | None) -> None:
        with self._lock:
            self.turns += 1
            self.overhead_ms.append(overhead_ms)
            if first_audio_ms is not None:
                self.first_audio_ms.append(first_audio_ms)
