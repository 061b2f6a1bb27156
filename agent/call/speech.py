"""Speech handles: one per agent utterance, tracking its chunks from queueing to PLAYBACK_STOP.

Pure state (times are passed in). Each chunk is played as `{utt_id=…,chunk=…}/file.wav`, and FreeSWITCH echoes
those tags on PLAYBACK_START/STOP (freeswitch.md §1.8), which is how a stop is matched to its chunk. What the caller
heard is the text of the chunks that played to the end, plus the played share of a chunk cut by barge-in
(`Playback-Status: break`, §9: EXECUTE_COMPLETE says FILE PLAYED either way). Time spent paused by
`uuid_fileman … pause` (a barge-in being confirmed) is not time heard.

A chunk FreeSWITCH could not open ends with CHANNEL_EXECUTE_COMPLETE `FILE NOT FOUND` and no PLAYBACK events
(§10), and a peer may never send PLAYBACK events at all: each chunk therefore has a deadline from its duration,
after which it counts as over, so nothing waits for an event that will not come.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a chunk may take beyond its duration before it is treated as over (queueing, file open, event latency).
DEADLINE_MARGIN_S = 1.5


@dataclass
class Chunk:
    index: int
    text: str
    path: str
    duration_s: float
    queued_at: float = 0.0
    deadline: float = float("inf")
    started_at: float | None = None
    stopped_at: float | None = None
    paused_s: float = 0.0
    paused_since: float | None = None
    status: str = ""  # "" (queued or playing), "done", "break", "error" (not playable), "lost" (deadline)
    # Parts of one text written as several files (a streaming engine) share a group; the text rides on the last.
    group: int = -1

    @property
    def playing(self) -> bool:
        return self.status == "" and self.started_at is not None

    def played_s(self) -> float:
        if self.started_at is None or self.stopped_at is None:
            return 0.0
        return max(0.0, self.stopped_at - self.started_at - self.paused_s)

    def heard_s(self) -> float:
        if self.status == "done":
            return self.duration_s
        return self.played_s() if self.status in ("break", "lost") else 0.0

    def pause(self, at: float) -> None:
        if self.playing and self.paused_since is None:
            self.paused_since = at

    def resume(self, at: float) -> None:
        if self.paused_since is not None:
            self.paused_s += max(0.0, at - self.paused_since)
            self.deadline += max(0.0, at - self.paused_since)
            self.paused_since = None

    def stop(self, status: str, at: float) -> None:
        self.resume(at)
        self.stopped_at = at
        self.status = status


@dataclass
class SpeechHandle:
    utt_id: str
    kind: str  # greeting | reply | prompt | filler
    interruptible: bool = True
    chunks: list[Chunk] = field(default_factory=list)
    synthesis_done: bool = False
    interrupted: bool = False
    first_audio_at: float | None = None

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.chunks if c.text)  # a streamed sentence's later parts carry no text

    def add(self, text: str, path: str, duration_s: float, *, at: float = 0.0, after: float = 0.0,
            group: int | None = None) -> Chunk:
        """Queues a chunk at `at`; `after` is when the audio already queued before it should end."""
        index = len(self.chunks)
        chunk = Chunk(index, text, path, duration_s, queued_at=at,
                      deadline=max(at, after) + duration_s + DEADLINE_MARGIN_S,
                      group=index if group is None else group)
        self.chunks.append(chunk)
        return chunk

    @property
    def playing_or_queued(self) -> bool:
        return any(c.status == "" for c in self.chunks) or not (self.synthesis_done or self.interrupted)

    @property
    def finished(self) -> bool:
        return not self.playing_or_queued

    def heard(self) -> str:
        """The words the caller heard: whole groups that played, and the played share of a cut one."""
        groups: dict[int, list[Chunk]] = {}
        for chunk in self.chunks:
            groups.setdefault(chunk.group, []).append(chunk)
        heard: list[str] = []
        for parts in groups.values():
            text = " ".join(c.text for c in parts if c.text)
            if all(c.status == "done" for c in parts):
                heard.append(text)
                continue
            total = sum(c.duration_s for c in parts)
            share = min(1.0, sum(c.heard_s() for c in parts) / total) if total > 0 else 0.0
            words = text.split()
            heard.append(" ".join(words[: int(len(words) * share)]))
        return " ".join(t for t in heard if t)

    def on_start(self, index: int, at: float) -> None:
        chunk = self._chunk(index)
        if chunk is not None and chunk.status == "":
            chunk.started_at = at
            # From now on only its own length (and any pause) is left.
            chunk.deadline = at + chunk.duration_s + DEADLINE_MARGIN_S
            if self.first_audio_at is None:
                self.first_audio_at = at

    def on_stop(self, index: int, status: str, at: float) -> None:
        chunk = self._chunk(index)
        if chunk is not None and chunk.status in ("", "lost"):
            chunk.stop("break" if status == "break" else "done", at)

    def on_failed(self, index: int, at: float) -> None:
        """CHANNEL_EXECUTE_COMPLETE said FILE NOT FOUND / PLAYBACK ERROR: the caller heard nothing of it."""
        chunk = self._chunk(index)
        if chunk is not None and chunk.status == "":
            chunk.stop("error", at)

    def expire(self, now: float) -> list[Chunk]:
        """Chunks past their deadline with no stop event: over, as far as waiting is concerned."""
        late = [c for c in self.chunks if c.status == "" and c.paused_since is None and now > c.deadline]
        for chunk in late:
            chunk.stop("lost", now)
        return late

    def cut(self, at: float) -> None:
        """Barge-in: everything not yet played is dropped (uuid_break all flushed it)."""
        self.interrupted = True
        for chunk in self.chunks:
            if chunk.status == "":
                if chunk.started_at is not None:
                    chunk.stop("break", at)
                else:
                    chunk.status = "break"

    @property
    def planned_end(self) -> float:
        """When the last queued chunk should have played out (pauses included)."""
        return max((c.deadline - DEADLINE_MARGIN_S for c in self.chunks if c.status == ""), default=0.0)

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
    def audio_playing(self) -> bool:
        """A chunk has started and not stopped: the caller hears the agent right now (or a pause in it)."""
        return any(c.playing for h in self.handles.values() for c in h.chunks)

    def queued_until(self) -> float:
        """When everything queued so far should have played out; new chunks play after it."""
        return max((h.planned_end for h in self.handles.values()), default=0.0)

    @property
    def interruptible_now(self) -> bool:
        """Barge-in is allowed only if nothing non-interruptible (greeting, disclosure) is still playing."""
        active = self.active()
        return bool(active) and all(h.interruptible for h in active)

    def pause(self, at: float) -> None:
        for h in self.handles.values():
            for c in h.chunks:
                c.pause(at)

    def resume(self, at: float) -> None:
        for h in self.handles.values():
            for c in h.chunks:
                c.resume(at)

    def expire(self, now: float) -> list[tuple[SpeechHandle, Chunk]]:
        return [(h, c) for h in self.handles.values() for c in h.expire(now)]

    def forget_finished(self, keep: int = 8) -> None:
        """Bounded memory over a long call: drop old finished handles, keep the last few for late events."""
        done = [k for k, h in self.handles.items() if h.finished]
        for key in done[:-keep] if keep else done:
            del self.handles[key]
