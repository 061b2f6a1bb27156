"""Fakes for the call room's fast tests, written from the wire protocol (freeswitch.md §1, §4): an ESL connection
that records each command as FreeSWITCH would receive it and answers like FreeSWITCH, a call store that keeps what
was submitted, and a prompt cache whose files are real WAVs (their duration is what the caller would hear)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from agent.call.actions.say import Voice

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


class FakeConn:
    """`sent` holds ("api", line), ("sendmsg", app, arg, headers) and ("command", line) in the order sent.

    `api_replies` maps a command's first words to the body FreeSWITCH answers (`+OK`, `-ERR …`); the default is
    `+OK`. `fail` maps a command's first words to an exception raised instead of a reply."""

    def __init__(self, api_replies: dict[str, str] | None = None,
                 fail: dict[str, BaseException] | None = None) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.api_replies = api_replies or {}
        self.fail = fail or {}
        self.closed = False

    def _raise_for(self, line: str) -> None:
        for prefix, exc in self.fail.items():
            if line.startswith(prefix):
                raise exc

    def api(self, command: str, *, check: bool = True, timeout: float | None = None) -> str:
        self.sent.append(("api", command))
        self._raise_for(command)
        reply = next((r for p, r in self.api_replies.items() if command.startswith(p)), "+OK\n")
        if check and not reply.startswith("+OK"):
            from agent.esl.errors import CommandFailed
            raise CommandFailed(command, reply)
        return reply

    def sendmsg(self, app: str, arg: str = "", *, event_lock: bool = True, app_uuid: str | None = None) -> str:
        self.sent.append(("sendmsg", app, arg, {"event_lock": event_lock, "app_uuid": app_uuid}))
        self._raise_for(f"sendmsg {app}")
        return "+OK"

    def command(self, line: str, headers: Any = None, body: str | None = None) -> str:
        self.sent.append(("command", line))
        self._raise_for(line)
        return "+OK"

    def close(self) -> None:
        self.closed = True

    def apis(self) -> list[str]:
        return [s[1] for s in self.sent if s[0] == "api"]

    def playbacks(self) -> list[str]:
        return [s[2] for s in self.sent if s[0] == "sendmsg" and s[1] == "playback"]

    def lines(self) -> list[str]:
        """Each command as one line: `api …`, `sendmsg <app> <arg>`, or the command itself."""
        out = []
        for s in self.sent:
            out.append(f"api {s[1]}" if s[0] == "api" else f"sendmsg {s[1]} {s[2]}".strip()
                       if s[0] == "sendmsg" else s[1])
        return out


class FakeStore:
    def __init__(self) -> None:
        self.ops: list[tuple[str, dict[str, Any]]] = []

    def submit(self, op: str, **fields: Any) -> None:
        self.ops.append((op, fields))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [f for op, f in self.ops if op == "event" and (kind is None or f["kind"] == kind)]

    def kinds(self) -> list[str]:
        return [f["kind"] for op, f in self.ops if op == "event"]

    def turns(self) -> list[dict[str, Any]]:
        return [f for op, f in self.ops if op == "turn"]

    def ends(self) -> list[dict[str, Any]]:
        return [f for op, f in self.ops if op == "call_end"]


class FakePrompts:
    """A prompt cache: one WAV of `seconds` per text, written once."""

    def __init__(self, folder: Path, seconds: float = 0.5) -> None:
        self.folder = folder
        self.seconds = seconds
        self.asked: list[str] = []

    def get(self, text: str, rate: int) -> Path:
        self.asked.append(text)
        path = self.folder / f"prompt-{len(self.asked)}.wav"
        soundfile.write(str(path), np.zeros(int(self.seconds * rate), dtype=np.int16), rate, subtype="PCM_16")
        return path


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class SpyVoice(Voice):
    """The real Voice; a wait for a playback's end returns at once with the audio played out, as FreeSWITCH would
    have reported it (PLAYBACK_START and STOP per chunk); each wait's kind and limit is kept in `waits`."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.waits: list[tuple[str, float]] = []

    def wait_finished(self, handle: Any, timeout: float) -> bool:
        self.waits.append((handle.kind, round(timeout, 6)))
        for chunk in handle.chunks:
            handle.on_start(chunk.index, self.clock())
            handle.on_stop(chunk.index, "done", self.clock())
        return True


def spy_voice(conn: FakeConn, record: Any, prompts: Any, clock: Clock) -> SpyVoice:
    return SpyVoice(conn, UUID, 8000, prompts, record, clock=clock)  # type: ignore[arg-type]
