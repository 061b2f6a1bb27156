"""The say verb: queues audio files on the channel in order and tracks what the caller heard (freeswitch.md §1.6).

`sendmsg playback` with event-lock plays queued chunks strictly in order, like uuid_broadcast, but without the 5
lead frames uuid_broadcast reads first: 100 ms less before each chunk starts. Pause, resume and break act on
what is playing (`uuid_fileman … pause` toggles, §10; `uuid_break … all` also flushes the queue, §4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import soundfile
from gevent.event import Event as GEvent

from agent.call.record import CallRecord
from agent.call.speech import Playout, SpeechHandle
from agent.call.threads import call_in_thread
from agent.esl import commands as cmd
from agent.esl.codec import Event
from agent.esl.connection import EslConnection
from agent.store.calls import now_utc

log = logging.getLogger(__name__)

PROMPT_TIMEOUT_S = 10.0
FAILED_RESPONSES = ("FILE NOT FOUND", "PLAYBACK ERROR")


class PromptSource(Protocol):
    def get(self, text: str, rate: int) -> Path: ...


class Voice:
    def __init__(self, conn: EslConnection, uuid: str, rate: int, prompts: PromptSource, record: CallRecord, *,
                 clock: Callable[[], float] = time.monotonic):
        self.conn = conn
        self.uuid = uuid
        self.rate = rate
        self.prompts = prompts
        self.record = record
        self.clock = clock
        self.playout = Playout()
        self.paused = False
        self.failures = 0  # chunks FreeSWITCH could not play, this call
        self._finished: dict[str, GEvent] = {}

    # queueing -------------------------------------------------------------------------------------------

    def new_handle(self, kind: str = "reply", interruptible: bool = True) -> SpeechHandle:
        handle = self.playout.new(kind, interruptible)
        self._finished[handle.utt_id] = GEvent()
        self.playout.forget_finished()
        for key in [k for k in self._finished if k not in self.playout.handles]:
            del self._finished[key]
        return handle

    def queue(self, handle: SpeechHandle, text: str, path: str, duration_s: float, *,
              group: int | None = None) -> None:
        now = self.clock()
        chunk = handle.add(text, path, duration_s, at=now, after=self.playout.queued_until(), group=group)
        arg = cmd.playback_path(path, {"utt_id": handle.utt_id, "chunk": chunk.index})
        self.conn.sendmsg("playback", arg, event_lock=True, app_uuid=self.app_uuid(handle.utt_id, chunk.index))

    def app_uuid(self, utt_id: str, chunk: int) -> str:
        return f"{self.uuid}-{utt_id}-{chunk}"

    def play_file(self, text: str, path: Path | str, *, kind: str, interruptible: bool) -> SpeechHandle:
        handle = self.new_handle(kind, interruptible)
        self.queue(handle, text, str(path), soundfile.info(str(path)).duration)
        handle.synthesis_done = True
        return handle

    def prompt_path(self, text: str) -> Path:
        """A cached prompt, synthesized off the hub (a 16 kHz call's first prompt may not be warm)."""
        path, _ = call_in_thread(self.prompts.get, text, self.rate, timeout=PROMPT_TIMEOUT_S)
        return path

    def say_prompt(self, text: str, *, interruptible: bool = True, kind: str = "prompt") -> SpeechHandle:
        """Speaks a fixed phrase from the prompt cache and records it as an agent turn."""
        handle = self.play_file(text, self.prompt_path(text), kind=kind, interruptible=interruptible)
        self.record.turn(self.record.next_turn_seq(), "agent", text, started_at=now_utc(), source=kind)
        return handle

    # events ---------------------------------------------------------------------------------------------

    def on_playback(self, ev: Event, started: bool) -> None:
        handle = self.playout.get(ev.get("utt_id"))
        chunk = ev.get("chunk")
        if handle is None or not chunk.isdigit():
            return
        now = self.clock()
        if started:
            handle.on_start(int(chunk), now)
        else:
            handle.on_stop(int(chunk), ev.get("Playback-Status"), now)
        self.check_finished(handle)

    def on_execute_complete(self, ev: Event) -> bool:
        """CHANNEL_EXECUTE_COMPLETE of one of our playbacks; True when the file could not be played."""
        app_uuid = ev.get("Application-UUID")
        response = ev.get("Application-Response")
        if ev.get("Application") != "playback" or not response.startswith(FAILED_RESPONSES):
            return False
        for handle in self.playout.handles.values():
            for chunk in handle.chunks:
                if self.app_uuid(handle.utt_id, chunk.index) == app_uuid:
                    handle.on_failed(chunk.index, self.clock())
                    self.failures += 1
                    self.record.event("playback_failed", utt_id=handle.utt_id, chunk=chunk.index,
                                      response=response)
                    self.check_finished(handle)
                    return True
        return False

    def expire(self) -> int:
        """Ends chunks whose deadline passed without a stop event (a peer that sends no PLAYBACK events)."""
        late = self.playout.expire(self.clock())
        for handle, chunk in late:
            self.record.event("playback_lost", utt_id=handle.utt_id, chunk=chunk.index)
            self.check_finished(handle)
        return len(late)

    # control --------------------------------------------------------------------------------------------

    def pause(self) -> bool:
        """Pauses the file now playing; False when FreeSWITCH had none (`-ERR No file handle!`)."""
        if self.paused:
            return True
        reply = self.conn.api(cmd.uuid_fileman(self.uuid, "pause"), check=False)
        self.paused = cmd.api_ok(reply)
        if self.paused:
            self.playout.pause(self.clock())
        return self.paused

    def resume(self) -> None:
        """Toggles the pause off: the same file goes on where it stopped."""
        if not self.paused:
            return
        self.paused = False
        self.conn.api(cmd.uuid_fileman(self.uuid, "pause"), check=False)
        self.playout.resume(self.clock())

    def break_all(self) -> None:
        """Stops the file and flushes the queue; the handles are cut at once (events may lag)."""
        self.conn.api(cmd.uuid_break(self.uuid), check=False)
        self.paused = False
        now = self.clock()
        for handle in self.playout.active():
            handle.cut(now)
            self.check_finished(handle)

    # waiting --------------------------------------------------------------------------------------------

    def check_finished(self, handle: SpeechHandle) -> None:
        event = self._finished.get(handle.utt_id)
        if event is not None and handle.finished:
            event.set()

    def wait_finished(self, handle: SpeechHandle, timeout: float) -> bool:
        self.check_finished(handle)
        event = self._finished.get(handle.utt_id)
        return True if event is None else event.wait(timeout)

    def remaining_s(self, handle: SpeechHandle) -> float:
        """How long the handle's audio may still take (its planned end, past now)."""
        return max(0.0, handle.planned_end - self.clock())
