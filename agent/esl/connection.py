"""One outbound ESL socket under gevent: a reader greenlet, a FIFO of pending replies, timeouts on every wait.

Replies come back in command order (§1.1), so each command appends a waiter under a lock that also covers the
write; events and disconnect notices go to `events` in arrival order. When the socket closes every pending
waiter gets CallGone, so no greenlet is left waiting on a call that is gone.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore
from gevent.queue import Queue

from agent.esl.codec import Decoder, Event, Message, ProtocolError, encode_command, parse_event
from agent.esl.errors import CallGone, CommandFailed, ReplyTimeout

log = logging.getLogger(__name__)

READ_SIZE = 65536


@dataclass(frozen=True)
class Disconnect:
    """A `text/disconnect-notice`: `linger` means events keep coming; `disconnect` means the socket closes."""

    disposition: str


@dataclass(frozen=True)
class Closed:
    """The socket is gone (EOF, error, or we closed it)."""

    reason: str


Incoming = Event | Disconnect | Closed


class EslConnection:
    def __init__(self, sock, *, reply_timeout: float = 5.0):
        self._sock = sock
        self._decoder = Decoder()
        self._pending: deque[AsyncResult] = deque()
        self._write_lock = Semaphore()
        self.reply_timeout = reply_timeout
        self.events: Queue[Incoming] = Queue()
        self.closed = False
        self._reader: gevent.Greenlet | None = None

    def start(self) -> None:
        self._reader = gevent.spawn(self._read_loop)

    def _read_loop(self) -> None:
        reason = "eof"
        try:
            while True:
                data = self._sock.recv(READ_SIZE)
                if not data:
                    break
                for message in self._decoder.feed(data):
                    self._dispatch(message)
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            log.warning("ESL protocol error, dropping the connection: %s", exc)
        except OSError as exc:
            reason = f"socket error: {exc}"
        finally:
            self._shutdown(reason)

    def _dispatch(self, message: Message) -> None:
        ctype = message.content_type
        if ctype in ("command/reply", "api/response"):
            if not self._pending:
                log.warning("ESL reply with no command waiting: %r", message.reply_text[:80])
                return
            self._pending.popleft().set(message)
        elif ctype in ("text/event-plain", "text/event-json"):
            self.events.put(parse_event(message))
        elif ctype == "text/disconnect-notice":
            self.events.put(Disconnect(message.headers.get("Content-Disposition", "disconnect")))
        else:
            # log/data, text/event-xml, rude-rejection: nothing the controller subscribes to.
            log.debug("ignoring ESL message of type %r", ctype)

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        while self._pending:
            self._pending.popleft().set_exception(CallGone(reason))
        self.events.put(Closed(reason))
        with contextlib.suppress(OSError):
            self._sock.close()

    def send(self, command: str, headers: Mapping[str, str] | None = None, body: str | None = None,
             timeout: float | None = None) -> Message:
        """Sends one command and waits for its reply (command/reply or api/response)."""
        if self.closed:
            raise CallGone("socket closed")
        waiter = AsyncResult()
        data = encode_command(command, headers, body)
        with self._write_lock:
            self._pending.append(waiter)
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self._shutdown(f"send failed: {exc}")
                raise CallGone(str(exc)) from exc
        try:
            # A late reply still pops this waiter, so the FIFO stays aligned after a timeout.
            return waiter.get(timeout=timeout or self.reply_timeout)
        except gevent.Timeout as exc:
            raise ReplyTimeout(f"no reply to {command.split(' ', 1)[0]!r}") from exc

    def command(self, command: str, headers: Mapping[str, str] | None = None, body: str | None = None) -> str:
        """A non-api command; returns Reply-Text, raising CommandFailed on -ERR."""
        reply = self.send(command, headers, body).reply_text
        if reply.startswith("-"):
            raise CommandFailed(command, reply)
        return reply

    def api(self, command: str, *, check: bool = True, timeout: float | None = None) -> str:
        """`api <command>`; returns the body, raising CommandFailed when it does not start with +OK."""
        reply = self.send(f"api {command}", timeout=timeout).body.decode("utf-8", "replace")
        if check and not reply.startswith("+OK"):
            raise CommandFailed(command, reply)
        return reply

    def sendmsg(self, app: str, arg: str = "", *, event_lock: bool = True, app_uuid: str | None = None) -> str:
        """Queues a dialplan app on this channel (§1.6); completion arrives as CHANNEL_EXECUTE_COMPLETE."""
        headers = {"call-command": "execute", "execute-app-name": app}
        if arg:
            headers["execute-app-arg"] = arg
        if event_lock:
            headers["event-lock"] = "true"
        if app_uuid:
            headers["Event-UUID"] = app_uuid
        return self.command("sendmsg", headers)

    def close(self) -> None:
        self._shutdown("closed by agent")
