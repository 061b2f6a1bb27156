"""In-process stand-ins for the worker's tests: a server connection speaking the websockets API the worker uses,
and the config and metadata of a test fork."""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from agent.config import Config, WorkerConfig


class FakeConn:
    """A server connection: `incoming` is read by recv/iteration (an exception in it is raised there)."""

    def __init__(self, incoming: list[object], path: str | None = "/call-9?x=1", *, send_fails: bool = False):
        self.request = SimpleNamespace(path=path) if path is not None else None
        self.incoming = deque(incoming)
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.state = State.OPEN
        self.send_fails = send_fails

    def _next(self) -> object:
        if not self.incoming:
            raise ConnectionClosed(None, None)
        item = self.incoming.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    async def recv(self) -> object:
        return self._next()

    async def __aiter__(self) -> AsyncIterator[object]:
        while self.incoming:
            yield self._next()

    async def send(self, message: str) -> None:
        if self.send_fails:
            raise ConnectionClosed(None, None)
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.state = State.CLOSED


def make_cfg(tmp_path: Path, **worker: object) -> Config:
    base = WorkerConfig(listen=("127.0.0.1", 0), hotwords_dir=str(tmp_path))
    return Config(worker=dataclasses.replace(base, **worker))


def meta(**fields: object) -> str:
    return json.dumps({"call_id": "call-1", "rate": 16000, **fields})
