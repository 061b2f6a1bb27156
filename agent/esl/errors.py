"""ESL errors. CallGone wakes every waiter when the channel or socket goes away (the greenswitch lesson, §2)."""

from __future__ import annotations


class EslError(RuntimeError):
    """Base of every ESL failure."""


class CallGone(EslError):
    """The socket closed or FreeSWITCH said goodbye; nothing more can be sent for this call."""


class ReplyTimeout(EslError):
    """FreeSWITCH did not answer a command in time."""


class CommandFailed(EslError):
    """FreeSWITCH answered -ERR (or -USAGE); `reply` is its text."""

    def __init__(self, command: str, reply: str):
        super().__init__(f"{command.split(' ', 2)[:2]} failed: {reply.strip()}")
        self.command = command
        self.reply = reply
