"""The channel thread: private-event queue, parse_event, dialplan apps and playback (freeswitch.md §1.6, §4).

Mirrors switch_ivr_parse_event / switch_core_session_exec / switch_ivr_play_file: the queue is drained
only while CF_EVENT_LOCK is clear, and playback and sleep drain it every frame, so an unlocked second
playback nests and plays at once; `uuid_break` stops the running broadcast (and, via CF_STOP_BROADCAST,
every one it is nested in), `all` also flushes the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.sim.dtmf import InbandDetector
from agent.sim.fsutil import atoi, is_true, separate_string, split_file_params
from agent.sim.log import Heard
from agent.sim.playout import Playout, fs_can_read, load_file

if TYPE_CHECKING:
    from agent.sim.channel import Channel

LOOP_MIN_S = 0.5             # parse_event stops looping an app that returned in under 0.5 s
NOOP_APPS = frozenset({"log", "info", "ring_ready", "park"})


@dataclass
class PrivateEvent:
    """A queued sendmsg / broadcast command (call-command + headers, optional body)."""

    headers: list[tuple[str, str]]
    body: str | None = None

    def get(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


AppFn = Callable[["Channel", str], Awaitable[None]]


class Executor:
    def __init__(self, channel: Channel, extra_apps: Mapping[str, AppFn] | None = None):
        self.ch = channel
        self.extra_apps = dict(extra_apps or {})
        self.queue: deque[PrivateEvent] = deque()
        self.lock = False            # CF_EVENT_LOCK
        self.break_flag = 0          # CF_BREAK (1, or 2 from `all` / killAudio)
        self.broadcast = False       # CF_BROADCAST
        self.stop_broadcast = False  # CF_STOP_BROADCAST
        self.apps: list[str] = []    # the app stack (nested apps on top)
        self.app_uuids: list[str] = []
        self.playing = 0             # playbacks on the stack
        self.playouts: list[Playout] = []   # their file handles; the innermost one plays
        self.leading = 0             # commands reading their lead frames
        self._wake = asyncio.Event()

    @property
    def idle(self) -> bool:
        return not self.queue and not self.apps and not self.leading

    def wake(self) -> None:
        self._wake.set()

    @property
    def file_handle(self) -> Playout | None:
        """switch_ivr_get_file_handle: the file the innermost playback is reading."""
        return self.playouts[-1] if self.playouts else None

    def tick(self, now: float) -> tuple[Playout | None, int | None]:
        """One media frame for the write stream: the innermost playback advances (nested ones hold)."""
        po = self.file_handle
        if po is None:
            return None, None
        k = po.tick(now, 0.02 / self.ch.speed)
        if po.done:
            self.wake()
        return po, k

    def enqueue(self, event: PrivateEvent) -> None:
        """switch_core_session_queue_private_event."""
        self.queue.append(event)
        self.wake()
        self.ch.notify()

    def uuid_break(self, flush_all: bool) -> None:
        """break_function in mod_commands.c."""
        if flush_all:
            self.queue.clear()
        if self.broadcast:
            self.stop_broadcast = True
            self.break_flag = self.break_flag or 1
        else:
            self.break_flag = 2 if flush_all else 1
        self.wake()
        self.ch.notify()

    def break_current(self) -> None:
        """CF_BREAK=2 alone (killAudio, DTMF terminator): only the innermost playback stops."""
        self.break_flag = 2
        self.wake()

    async def park(self) -> None:
        """switch_ivr_park: run queued commands while the channel is ready and controlled."""
        while self.ch.ready and self.ch.controlled:
            if self.queue and not self.lock:
                await self.parse_all()
            else:
                await self._nap(None)

    async def parse_all(self) -> None:
        """switch_ivr_parse_all_events: stops at the first command that leaves CF_BREAK set."""
        while self.queue and not self.lock:
            if not await self.parse_event(self.queue.popleft()):
                break

    async def parse_event(self, event: PrivateEvent) -> bool:
        """One private command; False when CF_BREAK is left set (SWITCH_STATUS_BREAK)."""
        command = (event.get("call-command") or "").lower()
        if not command:
            self.ch.note("private event without call-command ignored")
            return True
        locked = is_true(event.get("event-lock"))
        self.lock = self.lock or locked
        try:
            lead = event.get("lead-frames")
            if lead and self.ch.media_ready:
                await self._lead_frames(atoi(lead))
            if command == "execute":
                await self._execute(event)
            elif command == "hangup":
                self.ch.hangup(event.get("hangup-cause") or "NORMAL_CLEARING", by="agent_hangup")
            else:
                self.ch.note(f"call-command {command!r} not modelled")
        finally:
            if locked:
                self.lock = False
            self.ch.notify()
        return not self.break_flag

    async def _lead_frames(self, frames: int) -> None:
        self.leading += 1
        try:
            deadline = time.monotonic() + frames * 0.02 / self.ch.speed
            while self.ch.ready and time.monotonic() < deadline:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        finally:
            self.leading -= 1

    async def _execute(self, event: PrivateEvent) -> None:
        app = event.get("execute-app-name")
        if not app:
            return
        arg = event.get("execute-app-arg")
        ctype = event.get("content-type")
        if not arg and ctype and ctype.lower() == "text/plain":
            arg = event.body
        loops = atoi(event.get("loops") or "1")
        self.stop_broadcast = False
        inner = self.broadcast       # a command run inside another broadcast leaves CF_BROADCAST alone
        self.broadcast = True
        x = 0
        while x < loops or loops < 0:
            started = time.monotonic()
            app_uuid = event.get("event-uuid") or str(uuidlib.uuid4())
            if not await self.exec_app(app, arg, app_uuid, event.get("event-uuid-name")):
                if not inner or self.stop_broadcast:
                    self.broadcast = False
                break
            call_s = (time.monotonic() - started) * self.ch.speed
            if not self.ch.ready or self.stop_broadcast or call_s < LOOP_MIN_S:
                break
            x += 1
        if not inner:
            self.broadcast = False
        if self.stop_broadcast:
            self.broadcast = False
            self.break_flag = self.break_flag or 1

    async def exec_app(self, app: str, arg: str | None, app_uuid: str, uuid_name: str | None = None) -> bool:
        """switch_core_session_exec: CHANNEL_EXECUTE, the app, CHANNEL_EXECUTE_COMPLETE."""
        handler = getattr(self, f"_app_{app}", None) if app.isidentifier() else None
        if app in self.extra_apps:
            fn = self.extra_apps[app]

            async def handler(arg: str) -> None:
                await fn(self.ch, arg)
        if handler is None and app not in NOOP_APPS:
            self.ch.note(f"invalid application {app!r}: channel hung up DESTINATION_OUT_OF_ORDER")
            self.ch.hangup("DESTINATION_OUT_OF_ORDER", by="agent_hangup")
            return False
        if not self.ch.up:
            return False
        expanded = self.ch.expand(arg) if arg is not None else None
        self.ch.variables["current_application"] = app
        if expanded is not None:
            self.ch.variables["current_application_data"] = expanded
        self.ch.variables.pop("current_application_response", None)
        ids = [("Application-UUID", app_uuid)] + ([("Application-UUID-Name", uuid_name)] if uuid_name else [])
        data = [("Application-Data", expanded)] if expanded is not None else []
        self.ch.fire("CHANNEL_EXECUTE", [("Application", app), *data, *ids])
        self.break_flag = 0
        self.apps.append(app)
        self.app_uuids.append(app_uuid)
        try:
            if handler is not None:
                await handler(expanded or "")
        finally:
            self.apps.pop()
            self.app_uuids.pop()
        response = self.ch.variables.get("current_application_response") or "_none_"
        self.ch.fire("CHANNEL_EXECUTE_COMPLETE",
                     [("Application", app), *data, ("Application-Response", response), *ids])
        return True

    async def _nap(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # -- apps (mod_dptools) --------------------------------------------------------------------------

    async def _app_answer(self, arg: str) -> None:
        self.ch.answer()

    async def _app_pre_answer(self, arg: str) -> None:
        self.ch.pre_answer()

    async def _app_set(self, arg: str) -> None:
        name, _, value = arg.partition("=")
        if name:
            self.ch.set_var(name, value or None)

    async def _app_export(self, arg: str) -> None:
        name, _, value = arg.partition("=")
        if name.startswith("nolocal:"):
            return          # only for the b-leg, which a single simulated channel never has
        if name:
            self.ch.set_var(name, value or None)

    async def _app_start_dtmf(self, arg: str) -> None:
        """Attaches the in-band DTMF detector bug (spandsp_start_dtmf / switch_ivr_inband_dtmf_session)."""
        self.ch.inband_dtmf = InbandDetector(self.ch.codec_rate)

    async def _app_stop_dtmf(self, arg: str) -> None:
        self.ch.inband_dtmf = None

    async def _app_unset(self, arg: str) -> None:
        self.ch.set_var(arg, None)

    async def _app_hangup(self, arg: str) -> None:
        self.ch.hangup(arg or "NORMAL_CLEARING", by="agent_hangup")

    async def _app_transfer(self, arg: str) -> None:
        argv = separate_string(arg, " ", 4)
        if argv and argv[0].startswith("-"):
            argv = argv[1:]
        if argv:
            self.ch.transfer(argv[0], argv[1] if len(argv) > 1 else None, argv[2] if len(argv) > 2 else None,
                             via="transfer_app")

    async def _app_sleep(self, arg: str) -> None:
        ms = atoi(arg)
        remaining = ms / 1000.0
        while self.ch.ready and remaining > 0 and not self.break_flag:
            if self.queue and not self.lock:
                await self.parse_all()
                continue
            t0 = time.monotonic()
            await self._nap(remaining / self.ch.speed)
            remaining -= (time.monotonic() - t0) * self.ch.speed

    async def _app_playback(self, arg: str) -> None:
        file = arg
        at = file.find("@@")
        if at >= 0:
            file = file[:at]
        params, path = split_file_params(file)
        po = self._open(path)
        if po is None:
            # switch_ivr_play_file could not open it: no PLAYBACK_START/STOP at all (§10).
            self.ch.variables["current_application_response"] = "FILE NOT FOUND"
            return
        duration_ms = int(po.duration_s * 1000) if po.duration_s >= 0 else -1
        heard = Heard(path=path, arg=file, headers=dict(params), app_uuid=self.app_uuids[-1],
                      t_start=time.monotonic(), duration_ms=duration_ms, segments=po.segments)
        self.ch.log.heard.append(heard)
        extra = [("Playback-File-Path", file), *params.items()]
        self.ch.fire("PLAYBACK_START", extra)
        self.ch.playback_started()
        self.playing += 1
        self.playouts.append(po)
        try:
            status = await self._play_for(po)
        finally:
            self.playouts.remove(po)
            po.finish()
            self.playing -= 1
        ms = po.position_ms if duration_ms < 0 else min(po.position_ms, duration_ms)
        samples = ms * 8
        self.ch.variables.update(playback_last_offset_pos=str(samples), playback_seconds=str(ms // 1000),
                                 playback_ms=str(ms), playback_samples=str(samples))
        heard.t_stop, heard.ms = time.monotonic(), ms
        heard.status = "break" if status == "break" else "done"
        self.ch.fire("PLAYBACK_STOP", [("Playback-File-Path", file), ("Playback-Status", heard.status),
                                       *params.items()])
        self.ch.variables["current_application_response"] = (
            "PLAYBACK ERROR" if status == "down" else "FILE PLAYED")
        self.ch.notify()

    def _open(self, path: str) -> Playout | None:
        """switch_core_file_open as user `freeswitch`: None when it cannot open or read the file."""
        rate = self.ch.codec_rate
        if path.startswith("silence_stream://"):
            ms = atoi(path[len("silence_stream://"):].split(",")[0])
            return Playout(None, rate, -1.0 if ms < 0 else ms / 1000.0, rate)
        if "://" in path:
            self.ch.note(f"playback of {path!r} not modelled: reported FILE NOT FOUND")
            return None
        file = Path(path)
        if not file.is_absolute():
            prefix = self.ch.variables.get("sound_prefix")
            if not prefix:
                return None
            file = Path(prefix) / file
        if not file.is_file():
            return None
        if not fs_can_read(file, self.ch.sim.fs_uid, self.ch.sim.fs_gids):
            self.ch.note(f"{file}: not readable by user freeswitch (mode {file.stat().st_mode & 0o777:o})")
            return None
        loaded = load_file(file)
        if loaded is None:
            return None
        audio, file_rate = loaded
        return Playout(audio, file_rate, len(audio) / file_rate, rate)

    async def _play_for(self, po: Playout) -> str:
        """The play_file frame loop: the media clock moves the file; nested commands hold it."""
        while True:
            if not self.ch.ready:
                return "down"
            if self.break_flag:
                self.break_flag = 0
                return "break"
            if self.queue and not self.lock:
                await self.parse_all()
                continue
            if po.done:
                return "done"
            await self._nap(0.5)
