"""Speech handles: one per agent utterance, tracking its chunks from queueing to PLAYBACK_STOP.

Pure state (times are passed in). Each chunk is played as `{utt_id=…,chunk=…}/file.wav`, and FreeSWITCH echoes
those tags on PLAYBACK_START/STOP (freeswitch.md §1.8), which is how a stop is matched to its chunk. What the caller
heard is the text of the chunks that played to the end, plus the played share of a chunk cut by barge-in
(`Playback-Status: break`, §9: EXECUTE_COMPLETE says FILE PLAYED either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Chunk:
    index: int
    text: str
    path: str
    duration_s: float
    started_at: float | None = None
    stopped_at: float | None = None
    status: str = ""  # "" (queued or playing), "done", "break"

    def heard_text(self) -> str:
        if self.status == "done":
            return self.text
        if self.started_at is None or self.stopped_at is None or self.duration_s <= 0:
            return ""
        share = min(1.0, (self.stopped_at - self.started_at) / self.duration_s)
        words = self.text.split()
        return " ".join(words[: int(len(words) * share)])


@dataclass
class SpeechHandle:
    utt_id: str
    kind: str  # greeting | reply | prompt
    interruptible: bool = True
    chunks: list[Chunk] = field(default_factory=list)
    synthesis_done: bool = False
    interrupted: bool = False
    first_audio_at: float | None = None

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.chunks)

    def add(self, text: str, path: str, duration_s: float) -> Chunk:
        chunk = Chunk(len(self.chunks), text, path, duration_s)
        self.chunks.append(chunk)
        return chunk

    @property
    def playing_or_queued(self) -> bool:
        return any(c.status == "" for c in self.chunks) or not (self.synthesis_done or self.interrupted)

    @property
    def finished(self) -> bool:
        return not self.playing_or_queued

    def heard(self) -> str:
        return " ".join(t for t in (c.heard_text() for c in self.chunks) if t)

    def on_start(self, index: int, at: float) -> None:
        chunk = self._chunk(index)
        if chunk is not None:
            chunk.started_at = at
            if self.first_audio_at is None:
                self.first_audio_at = at

    def on_stop(self, index: int, status: str, at: float) -> None:
        chunk = self._chunk(index)
        if chunk is not None:
            chunk.stopped_at = at
            chunk.status = "break" if status == "break" else "done"

    def cut(self, at: float) -> None:
        """Barge-in: everything not yet played is dropped (uuid_break all flushed it)."""
        self.interrupted = True
        for chunk in self.chunks:
            if chunk.status == "":
                chunk.status = "break"
                if chunk.started_at is not None and chunk.stopped_at is None:
                    chunk.stopped_at = at

    def _chunk(self, index: int) -> Chunk | None:
        return self.chunks[index] if 0 <= index < len(self.chunks) else None


class Playout:
    """All speech handles of one call, looked up by the utt_id tag FreeSWITCH echoes."""

    def __init__(self) -> None:
        self.handles: dict[str, SpeechHandle] = {}
        self._seq = 0

    def new(self, kind: str, interruptible: bool = True) -> SpeechHandle:
        self._seq += 1
        handle = SpeechHandle(f"{kind[0]}{self._seq}", kind, interruptible)
        self.handles[handle.utt_id] = handle
        return handle

    def get(self, utt_id: str) -> SpeechHandle | None:
        return self.handles.get(utt_id)

    def active(self) -> list[SpeechHandle]:
        return [h for h in self.handles.values() if h.playing_or_queued]

    @property
    def speaking(self) -> bool:
        return bool(self.active())

    @property
    def audio_queued(self) -> bool:
        """Some chunk is queued or playing on the channel (a reply still being generated does not count)."""
        return any(c.status == "" for h in self.handles.values() for c in h.chunks)

    @property
    def interruptible_now(self) -> bool:
        """Barge-in is allowed only if nothing non-interruptible (greeting, disclosure) is still playing."""
        active = self.active()
        return bool(active) and all(h.interruptible for h in active)
