"""The listen verb: mod_audio_fork into the speech worker, its liveness, and stopping it (freeswitch.md §3).

The fork's media bug survives `uuid_transfer` (§10), so the AI keeps hearing a caller it handed to a human
unless the fork is stopped: `stop` is called before every transfer and on every end path.

Liveness: the worker sends a heartbeat about once a second; a fork that connected but sends no heartbeat, or
whose heartbeats show no audio progress, for `timeout_s` is lost (the caller would otherwise talk to no one).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from agent.esl import commands as cmd
from agent.esl.connection import EslConnection

TOKEN_CHARS = 32


def fork_token(call_id: str, secret: str) -> str:
    """The per-call token the worker checks: HMAC-SHA256 of the call id, first 32 hex characters."""
    return hmac.new(secret.encode(), call_id.encode(), hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def secret_from_env(name: str) -> str:
    return os.environ.get(name, "") if name else ""


@dataclass
class ForkSettings:
    url: str
    rate: int
    bug: str
    mix: str = "stereo"  # caller left, what the caller hears right: the worker tells echo from speech
    secret: str = ""


class Listener:
    def __init__(self, conn: EslConnection, uuid: str, settings: ForkSettings):
        self.conn = conn
        self.uuid = uuid
        self.settings = settings
        self.started = False
        self.stopped = False

    def start(self, *, industry: str, tenant: str, hotwords: list[str], lang: str = "ko") -> str:
        """Asks FreeSWITCH to fork; returns its reply (`+OK Success` means only that it will try, §3.1)."""
        s = self.settings
        meta: dict[str, cmd.MetadataValue] = {
            "call_id": self.uuid, "rate": s.rate, "industry": industry or "general", "tenant": tenant,
            "lang": lang, "channels": 2 if s.mix == "stereo" else 1,
        }
        if hotwords:
            meta["hotwords"] = hotwords
        if s.secret:
            meta["token"] = fork_token(self.uuid, s.secret)
        url = f"{s.url.rstrip('/')}/{self.uuid}"
        reply = self.conn.api(cmd.uuid_audio_fork_start(self.uuid, url, s.rate, s.bug, meta, mix=s.mix),
                              check=False)
        self.started = cmd.api_ok(reply)
        return reply

    def stop(self) -> bool:
        """Removes the media bug; True when it was attached and FreeSWITCH confirmed. Safe to call twice."""
        if not self.started or self.stopped:
            return False
        self.stopped = True
        reply = self.conn.api(cmd.uuid_audio_fork_stop(self.uuid, self.settings.bug), check=False)
        return cmd.api_ok(reply)


@dataclass
class ForkLiveness:
    """Pure: is the worker still there? Times are the caller's clock (monotonic seconds)."""

    timeout_s: float = 2.5
    connected_at: float | None = None
    last_beat_at: float | None = None
    last_audio_ms: float = -1.0
    last_progress_at: float | None = None

    def on_connect(self, now: float) -> None:
        self.connected_at = now
        self.last_progress_at = now

    def on_heartbeat(self, now: float, audio_ms: float) -> None:
        self.last_beat_at = now
        if audio_ms > self.last_audio_ms:
            self.last_audio_ms = audio_ms
            self.last_progress_at = now

    def lost(self, now: float) -> str | None:
        """Why the fork counts as lost now, or None. Off when timeout_s is 0."""
        if not self.timeout_s or self.connected_at is None:
            return None
        beat = self.last_beat_at if self.last_beat_at is not None else self.connected_at
        if now - beat > self.timeout_s:
            return f"no heartbeat for {now - beat:.1f} s"
        if self.last_progress_at is not None and now - self.last_progress_at > self.timeout_s:
            return f"no audio progress for {now - self.last_progress_at:.1f} s"
        return None
