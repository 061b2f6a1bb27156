"""The idle timeout closes a fork whose peer went quiet, never one whose call session is busy (a decoder it
waits for under load): frames then wait unread in the socket, which is lateness, not silence."""

from __future__ import annotations

import asyncio

from agent.worker.server import WatchedConnection


class FakeSocket:
    def __init__(self, messages: list[bytes | str]):
        self.messages = messages

    async def __aiter__(self):
        for m in self.messages:
            yield m


def test_a_session_busy_with_a_frame_is_not_idle():
    async def main() -> tuple[float, float, float]:
        ws = WatchedConnection(FakeSocket([b"\0" * 640, b"\0" * 640]))  # type: ignore[arg-type]
        ws.last_audio -= 100.0  # long ago
        seen = []
        async for _ in ws:
            seen.append(ws.idle_for(ws.last_audio + 50.0))  # 50 s into processing this frame: busy
        after = ws.idle_for(ws.last_audio + 7.0)  # waiting for the next frame for 7 s: idle 7 s
        return seen[0], seen[1], after

    busy1, busy2, waiting = asyncio.run(main())
    assert busy1 == busy2 == 0.0
    assert abs(waiting - 7.0) < 1e-6
