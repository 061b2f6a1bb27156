"""ESL wire bytes exactly as mod_event_socket writes and reads them (freeswitch.md §1.1, §1.3, §1.7).

The simulator's own codec: it shares nothing with the agent's, so a framing bug on either side shows up
as a failing test instead of two copies of the same mistake agreeing with each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.sim.fsutil import atoi

# SWITCH_URL_UNSAFE from switch_utils.h; bytes below 0x20 and above '~' are encoded as well (§1.1).
URL_UNSAFE = frozenset(b"\r\n #%&+:;<=>?@[\\]^`{|}\"")
_UPPER_HEX = frozenset(b"0123456789ABCDEF")

DISCONNECT_MESSAGE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
NO_REPLY = "-ERR no reply\n"

Headers = Sequence[tuple[str, str]]


def url_encode(value: str) -> str:
    """switch_url_encode: `%XX` (uppercase) for unsafe bytes of the UTF-8 text; an existing `%XX` stays.

    `char` is signed in FreeSWITCH, so every byte >= 0x80 is "below space" and gets encoded too.
    Only uppercase hex counts as an existing escape: `%2b` becomes `%252b`.
    """
    data = value.encode("utf-8")
    out: list[str] = []
    last = len(data) - 1
    for i, b in enumerate(data):
        keep_escape = (b == 0x25 and last - i > 1 and data[i + 1] in _UPPER_HEX
                       and data[i + 2] in _UPPER_HEX)
        if not keep_escape and (b < 0x20 or b > 0x7E or b in URL_UNSAFE):
            out.append(f"%{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


def serialize_event(headers: Headers, body: str | None = None, *, encode: bool = True) -> bytes:
    """switch_event_serialize: `Name: value` lines, then `Content-Length: B` + body, or a blank line.

    An empty (encoded) value is written as `_undef_`; B counts UTF-8 bytes, and the body carries no
    terminator of its own.
    """
    lines = []
    for name, value in headers:
        text = url_encode(value) if encode else f"[{value}]"
        lines.append(f"{name}: {text or '_undef_'}\n")
    head = "".join(lines).encode("utf-8")
    if body:
        raw = body.encode("utf-8")
        return head + f"Content-Length: {len(raw)}\n\n".encode() + raw
    return head + b"\n"


def frame_event(serialized: bytes, fmt: str = "plain") -> bytes:
    """The outer block of a delivered event: Content-Length first, then Content-Type (§1.1)."""
    return f"Content-Length: {len(serialized)}\nContent-Type: text/event-{fmt}\n\n".encode() + serialized


def command_reply(reply_text: str) -> bytes:
    """`command/reply`; a reply starting with `~` is a raw header block (bgapi's Job-UUID form)."""
    if reply_text.startswith("~"):
        return f"Content-Type: command/reply\n{reply_text[1:]}".encode()
    return f"Content-Type: command/reply\nReply-Text: {reply_text}\n\n".encode()


def api_response(body: str) -> bytes:
    """`api/response`: Content-Length counts bytes; an empty result becomes `-ERR no reply\\n` (api_exec)."""
    raw = (body or NO_REPLY).encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(raw)}\n\n".encode() + raw


def disconnect_notice(session_uuid: str | None, message: str = DISCONNECT_MESSAGE) -> bytes:
    """send_disconnect(): the 67-byte goodbye; a controlled session adds its uuid and the disposition."""
    raw = message.encode("utf-8")
    if session_uuid is None:
        return f"Content-Type: text/disconnect-notice\nContent-Length: {len(raw)}\n\n".encode() + raw
    return (f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {session_uuid}\n"
            f"Content-Disposition: disconnect\nContent-Length: {len(raw)}\n\n").encode() + raw


def linger_notice(session_uuid: str, channel_name: str, linger_time: int) -> bytes:
    """The notice a lingering session gets when its channel goes down (§1.7); Linger-Time -1 = forever."""
    return (f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {session_uuid}\n"
            f"Content-Disposition: linger\nChannel-Name: {channel_name}\nLinger-Time: {linger_time}\n"
            "Content-Length: 0\n\n").encode()


@dataclass
class ClientCommand:
    """One client→FS command: its first line, the `Name: value` lines after it, and an optional body."""

    line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None

    def header(self, name: str) -> str | None:
        """Case-insensitive lookup, first match wins (switch_event_get_header)."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


_LINE_BREAKS = re.compile(rb"[\r\n]+")


class CommandReader:
    """Incremental parser of client commands, following read_packet() in mod_event_socket.c.

    Leading CR/LF bytes are skipped; a block ends at the second LF in a row (CRs in between are ignored);
    lines split on any run of CR/LF; `Name: value` keeps the value after the colon minus leading spaces;
    lines without a colon are dropped; `Content-Length: N` makes exactly N more bytes the body.
    """

    def __init__(self, max_body: int = 16 * 1024 * 1024):
        self._buf = bytearray()
        self._pending: ClientCommand | None = None
        self._need = 0
        self._max_body = max_body

    def feed(self, data: bytes) -> list[ClientCommand]:
        """Adds received bytes; returns every command completed by them, in order."""
        self._buf += data
        done: list[ClientCommand] = []
        while True:
            if self._pending is not None:
                if len(self._buf) < self._need:
                    return done
                body = bytes(self._buf[:self._need]).split(b"\0", 1)[0]
                del self._buf[:self._need]
                self._pending.body = body.decode("utf-8", errors="replace")
                done.append(self._pending)
                self._pending = None
                continue
            command = self._take_block()
            if command is None:
                return done
            length = command.header("content-length")
            need = atoi(length) if length is not None else 0
            if need < 0 or need > self._max_body:
                raise ValueError(f"client Content-Length out of range: {length!r}")
            if need > 0:
                self._pending, self._need = command, need
            else:
                done.append(command)

    def _take_block(self) -> ClientCommand | None:
        start = 0
        while start < len(self._buf) and self._buf[start] in (0x0D, 0x0A):
            start += 1
        del self._buf[:start]
        crcount = 0
        for i, b in enumerate(self._buf):
            if b == 0x0A:
                crcount += 1
            elif b != 0x0D:
                crcount = 0
            if crcount == 2:
                block = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return _parse_block(block)
        return None


def _parse_block(block: bytes) -> ClientCommand:
    lines = [ln.decode("utf-8", errors="replace") for ln in _LINE_BREAKS.split(block) if ln]
    command = ClientCommand(line=lines[0] if lines else "")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name:
            command.headers.append((name, value.lstrip(" ")))
    return command


def join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """First value wins, as switch_event_get_header finds the first header of a name."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name, value)
    return out
