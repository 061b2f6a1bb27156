"""A tiny mod_audio_fork WebSocket server for the simulator's tests (what the worker would be)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection, serve


class WsServer:
    """A websockets server on its own loop and thread; `handler(ws, record)` decides what it does."""

    def __init__(self, handler: Callable[[ServerConnection, dict], Awaitable[None]]):
        self.record: dict = {"texts": [], "sizes": [], "closed": threading.Event()}
        self._handler = handler
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()

        async def wrapped(ws: ServerConnection) -> None:
            self.record["request"] = ws.request
            self.record["subprotocol"] = ws.subprotocol
            try:
                await self._handler(ws, self.record)
            finally:
                self.record["close_code"] = ws.close_code
                self.record["closed"].set()

        async with serve(wrapped, "127.0.0.1", 0, subprotocols=["audio.drachtio.org"]) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


async def collect(ws: ServerConnection, record: dict) -> None:
    """Keeps texts, binary sizes, and (monotonic arrival time, bytes) of every binary frame."""
    record.setdefault("audio", [])
    async for msg in ws:
        if isinstance(msg, str):
            record["texts"].append(msg)
        else:
            record["sizes"].append(len(msg))
            record["audio"].append((time.monotonic(), msg))
