"""One mod_audio_fork media bug: the WebSocket client FreeSWITCH runs per fork (freeswitch.md §3.2, §3.3, §9).

Follows drachtio's lws_glue.cpp / audio_pipe.cpp: `audio.drachtio.org` subprotocol, Origin and Host from
the URL host (no port), the metadata text first, then raw L16 LE packets; server JSON becomes CUSTOM
`mod_audio_fork::*` events whose bodies are compact JSON, not URL-encoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, NegotiationError, WebSocketException
from websockets.typing import Origin, Subprotocol

from agent.sim.fsutil import cjson_dumps
from agent.sim.log import ForkLog

SUBPROTOCOL = "audio.drachtio.org"
CONNECT_TIMEOUT_S = 10.0            # lws timeout_secs
CLOSE_TIMEOUT_S = 2.0
MERGE_EVERY = 25                    # with merge_frames, every 25th packet rides with the next one (§9)
_URI = re.compile(r"^(.+?):?(\d+)?(/.*)?$")
_RAW_EXT = {8000: ".r8", 16000: ".r16", 24000: ".r24", 32000: ".r32", 48000: ".r48", 64000: ".r64"}

FireCustom = Callable[[str, "str | None"], None]


@dataclass(frozen=True)
class WsTarget:
    host: str
    port: int
    path: str
    secure: bool

    @property
    def url(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.host}:{self.port}{self.path}"


def parse_ws_uri(uri: str) -> WsTarget | None:
    """parse_ws_uri() in lws_glue.cpp: ws/wss/http/https (all-lower or all-upper scheme), default port."""
    for scheme, secure, port in (("https://", True, 443), ("wss://", True, 443),
                                 ("http://", False, 80), ("ws://", False, 80)):
        if uri.startswith(scheme) or uri.startswith(scheme.upper()):
            match = _URI.search(uri[len(scheme):])
            if not match:
                return None
            host, port_s, path = match.groups()
            return WsTarget(host, int(port_s) if port_s else port, path or "/", secure)
    return None


class _LwsConnection(ClientConnection):
    """libwebsockets sends `Host: <host>` without the port and no User-Agent; mirror that."""

    async def handshake(self, additional_headers: Any = None, user_agent_header: str | None = None) -> None:
        make_request = self.protocol.connect

        def lws_request() -> Any:
            request = make_request()
            del request.headers["Host"]
            request.headers["Host"] = self.protocol.uri.host  # type: ignore[attr-defined]
            return request

        self.protocol.connect = lws_request  # type: ignore[method-assign]
        await super().handshake(additional_headers, None)


class ForkBug:
    """A media bug streaming caller audio to one WebSocket; created by `uuid_audio_fork … start`."""

    def __init__(self, *, uuid: str, bugname: str, uri: str, rate: int, metadata: str | None,
                 log: ForkLog, fire_custom: FireCustom, kill_audio: Callable[[], None],
                 play_file_path: Callable[[str], Path], merge_frames: bool = False, mix: str = "mono"):
        self.uuid = uuid
        self.bugname = bugname
        self.rate = rate
        self.mix = mix                  # mono: caller only; stereo: caller left, caller-hears right
        self.metadata = metadata
        self.log = log
        self.target = parse_ws_uri(uri)
        self._fire = fire_custom
        self._kill_audio = kill_audio
        self._play_file_path = play_file_path
        self._merge = merge_frames
        self._ws: ClientConnection | None = None
        self._texts: list[tuple[str, bool]] = []   # (text, mergeable) waiting for the next write
        self._audio: list[bytes] = []
        self._late_pending = 0
        self._pushed = 0
        self._kick = asyncio.Event()
        self._closing = False
        self._flush_zero = False
        self.paused = False
        self.graceful = False
        self.removed = False
        self.play_files: list[Path] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._closing

    def start(self) -> None:
        """Begins connecting; `start` has already answered `+OK Success` (§3.1)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"fork-{self.bugname}")

    def push(self, packet: bytes, late: bool) -> bool:
        """One 20 ms packet from the channel's media; dropped (False) unless connected and streaming."""
        if not self.connected or self.paused or self.graceful:
            return False
        self._audio.append(packet)
        self._late_pending += late
        self._pushed += 1
        if not (self._merge and self._pushed % MERGE_EVERY == 0):
            self._kick.set()
        return True

    def send_text(self, text: str, *, mergeable: bool = True) -> bool:
        """bufferForSending: drachtio concatenates texts queued before the next write into one frame."""
        if not self.connected:
            return False
        if mergeable and self._texts and self._texts[-1][1]:
            self._texts[-1] = (self._texts[-1][0] + text, True)
        else:
            self._texts.append((text, mergeable))
        self._kick.set()
        return True

    def graceful_shutdown(self) -> None:
        self.graceful = True
        self._flush_zero = True
        self._kick.set()

    def close(self, final_text: str | None = None) -> None:
        """fork_session_cleanup: optional final text, then close 1000; temp files are deleted."""
        self.removed = True
        for path in self.play_files:
            path.unlink(missing_ok=True)
        if self._ws is None:
            if self._task is not None and not self._task.done():
                self._task.cancel()       # still connecting: lws drops it without telling anyone
            return
        if final_text:
            self.send_text(final_text)
        self._closing = True
        self._kick.set()

    async def wait_closed(self, timeout: float) -> None:
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout)

    async def _run(self) -> None:
        target = self.target
        if target is None:
            self._fail("Unable to connect")
            return
        try:
            ws = await websockets.connect(
                target.url, subprotocols=[Subprotocol(SUBPROTOCOL)], origin=Origin(f"http://{target.host}"),
                open_timeout=CONNECT_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S, ping_interval=None,
                compression=None, max_size=None, proxy=None, user_agent_header=None,
                create_connection=_LwsConnection)
        except NegotiationError:
            self._fail("HS: PROTOCOL malformed")
            return
        except InvalidStatus:
            self._fail("HS: ws upgrade response not 101")
            return
        except (OSError, TimeoutError, WebSocketException):
            self._fail("Unable to connect")
            return
        if self.removed:
            await ws.close(1000)
            return
        self._ws = ws
        self.log.connected = True
        self.log.t_connected = time.monotonic()
        self._fire("mod_audio_fork::connect", None)
        if self.metadata:
            self.send_text(self.metadata)
        reader = asyncio.get_running_loop().create_task(self._read(ws))
        try:
            await self._write(ws)
        except ConnectionClosed:
            pass
        finally:
            await asyncio.wait({reader}, timeout=CLOSE_TIMEOUT_S + 1)
            if not reader.done():
                reader.cancel()

    def _fail(self, reason: str) -> None:
        self.log.connect_failed = reason
        if not self.removed:
            self._fire("mod_audio_fork::connect_failed", cjson_dumps({"reason": reason}))

    async def _write(self, ws: ClientConnection) -> None:
        """The LWS_CALLBACK_CLIENT_WRITEABLE loop: texts first, then close, then buffered audio."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            while True:
                if self._ws is None:
                    return
                if self._texts:
                    text, _ = self._texts.pop(0)
                    await ws.send(text)
                    self.log.texts_sent.append(text)
                elif self._flush_zero:
                    self._flush_zero = False
                    await ws.send(b"")
                elif self._closing:
                    await ws.close(1000)
                    self.log.close_code = 1000
                    self.log.closed_by = self.log.closed_by or "sim"
                    return
                elif self._audio:
                    data = b"".join(self._audio)
                    self.log.packets_sent += len(self._audio)
                    self._audio.clear()
                    self.log.frames_late += self._late_pending
                    self._late_pending = 0
                    await ws.send(data)
                    self.log.frames_sent += 1
                else:
                    break

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, str):     # binary from the server is discarded (§3.2)
                    self.log.server_texts.append(message)
                    self._on_message(message)
        except ConnectionClosed:
            pass
        if not self._closing:
            # Closed by the far end: CONNECTION_DROPPED → ::disconnect, and the pipe is gone.
            self.log.close_code = ws.close_code
            self.log.closed_by = "server"
            self._ws = None
            self._kick.set()
            if not self.removed:
                self._fire("mod_audio_fork::disconnect", None)

    def _on_message(self, message: str) -> None:
        """processIncomingMessage(): a missing or non-string `type` counts as "json"."""
        try:
            obj = json.loads(message)
        except ValueError:
            return
        kind = obj.get("type") if isinstance(obj, dict) else None
        kind = kind if isinstance(kind, str) else "json"
        has_data = isinstance(obj, dict) and "data" in obj
        data = obj.get("data") if isinstance(obj, dict) else None
        if kind == "playAudio":
            if isinstance(data, dict):
                self._play_audio(data)
        elif kind == "killAudio":
            self._fire("mod_audio_fork::kill_audio", None)
            self._kill_audio()
        elif kind in ("transcription", "transfer", "disconnect", "error"):
            self._fire(f"mod_audio_fork::{kind}", cjson_dumps(data) if has_data else None)
        elif kind == "json":
            self._fire("mod_audio_fork::json", cjson_dumps(obj))

    def _play_audio(self, data: dict[str, Any]) -> None:
        content = data.pop("audioContent", None)
        ctype = data.get("audioContentType")
        ext = None
        if ctype == "raw":
            rate = data.get("sampleRate")
            ext = _RAW_EXT.get(rate if isinstance(rate, int) else 0, ".r16")
        elif ctype in ("wave", "wav"):
            ext = ".wav"
        if ext is not None and isinstance(content, str):
            try:
                audio = base64.b64decode(content)
            except (binascii.Error, ValueError):
                audio = b""
            path = self._play_file_path(ext)
            path.write_bytes(audio)
            self.play_files.append(path)
            data["file"] = str(path)
        self._fire("mod_audio_fork::play_audio", cjson_dumps(data))
