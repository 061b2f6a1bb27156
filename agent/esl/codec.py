"""ESL wire codec: bytes from FreeSWITCH → messages, commands → bytes (freeswitch.md §1.1–§1.4).

Pure: no sockets, no gevent. `Decoder.feed()` takes whatever one TCP read returned and yields every complete
message; an event split across reads waits for the rest, several events in one read all come out. Event-plain
values are URL-decoded one value at a time, *after* splitting lines, so a `%0A` inside a value cannot inject
headers (the flaw of greenswitch's parser, §2 item 3), and event bodies are kept as bodies (§2 item 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

# FreeSWITCH v1.10 has no cap on Content-Length; we cap to keep a broken peer from exhausting memory.
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024


class ProtocolError(ValueError):
    """The peer sent bytes that are not ESL; the connection cannot be trusted any more."""


@dataclass
class Message:
    """One ESL message: outer headers (not URL-encoded) and the raw body, if any."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")


@dataclass
class Event:
    """A decoded FreeSWITCH event: URL-decoded headers (case kept, looked up case-insensitively) and its body."""

    headers: dict[str, str]
    body: str = ""
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lower = {k.lower(): v for k, v in self.headers.items()}

    def get(self, name: str, default: str = "") -> str:
        return self._lower.get(name.lower(), default)

    @property
    def name(self) -> str:
        return self.get("Event-Name")

    @property
    def subclass(self) -> str:
        return self.get("Event-Subclass")

    @property
    def uuid(self) -> str:
        return self.get("Unique-ID")

    def json_body(self) -> dict | None:
        """The body parsed as a JSON object (mod_audio_fork CUSTOM events), or None if it is not one."""
        if not self.body:
            return None
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def _parse_header_block(block: bytes, *, decode_values: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"header line without ':': {line[:80]!r}")
        text = value.decode("utf-8", "replace").lstrip(" ")
        if decode_values:
            text = unquote(text, errors="replace")
        headers[name.decode("utf-8", "replace").strip()] = text
    return headers


def _content_length(headers: Mapping[str, str]) -> int:
    raw = headers.get("Content-Length")
    if raw is None:
        return 0
    if not raw.strip().isdigit():
        raise ProtocolError(f"bad Content-Length {raw!r}")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise ProtocolError(f"Content-Length {length} exceeds {MAX_BODY_BYTES}")
    return length


class Decoder:
    """Incremental decoder of the FreeSWITCH → client byte stream into Messages."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: dict[str, str] | None = None  # headers whose body has not fully arrived
        self._pending_len = 0

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buf += data
        while True:
            if self._pending is None:
                # Leading blank lines are skipped on both sides of the protocol (§1.1).
                while self._buf[:1] in (b"\n", b"\r"):
                    del self._buf[:1]
                end = self._buf.find(b"\n\n")
                crlf = self._buf.find(b"\r\n\r\n")
                if crlf != -1 and (end == -1 or crlf < end):
                    end, sep_len = crlf, 4
                else:
                    sep_len = 2
                if end == -1:
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise ProtocolError("header block too long")
                    return
                block = bytes(self._buf[:end])
                del self._buf[: end + sep_len]
                # The outbound `connect` reply is a whole CHANNEL_DATA event serialized *with* URL-encoding
                # and without Content-Length (§1.3), so outer values are decoded too; plain outer headers
                # never contain '%' sequences in practice, and unquote leaves other text untouched.
                headers = _parse_header_block(block, decode_values=True)
                self._pending = headers
                self._pending_len = _content_length(headers)
            if len(self._buf) < self._pending_len:
                return
            body = bytes(self._buf[: self._pending_len])
            del self._buf[: self._pending_len]
            message = Message(self._pending, body)
            self._pending = None
            self._pending_len = 0
            yield message


def parse_event(message: Message) -> Event:
    """Decodes a `text/event-plain` or `text/event-json` message body into an Event."""
    ctype = message.content_type
    if ctype == "text/event-json":
        try:
            data = json.loads(message.body.decode("utf-8"))
        except ValueError as exc:
            raise ProtocolError(f"bad event-json body: {exc}") from exc
        body = data.pop("_body", "")
        data.pop("Content-Length", None)
        headers = {k: v if isinstance(v, str) else ",".join(map(str, v)) for k, v in data.items()}
        return Event(headers, body)
    if ctype != "text/event-plain":
        raise ProtocolError(f"not an event: {ctype!r}")
    raw = message.body
    end = raw.find(b"\n\n")
    if end == -1:
        block, rest = raw, b""
    else:
        block, rest = raw[:end], raw[end + 2 :]
    headers = _parse_header_block(block, decode_values=True)
    body = b""
    if "Content-Length" in headers:
        # An event body follows its inner header block after an inner Content-Length (§1.1).
        length = _content_length(headers)
        body = rest[:length]
        del headers["Content-Length"]
    return Event(headers, body.decode("utf-8", "replace"))


def encode_command(command: str, headers: Mapping[str, str] | None = None, body: str | None = None) -> bytes:
    """Serializes one client command. Header values must fit on one line (§1.1); multi-line data goes in body."""
    if "\n" in command or "\r" in command:
        raise ValueError("an ESL command must be one line")
    lines = [command]
    for name, value in (headers or {}).items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"header {name} must be one line; send multi-line data as the body")
        lines.append(f"{name}: {value}")
    payload = b""
    if body is not None:
        payload = body.encode("utf-8")
        lines.append(f"Content-Length: {len(payload)}")
    return ("\n".join(lines) + "\n\n").encode("utf-8") + payload
