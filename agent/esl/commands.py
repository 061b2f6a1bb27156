"""Builders for the FreeSWITCH commands the controller sends (freeswitch.md §1.4, §3.1, §4). Pure strings.

Arguments are split on spaces by FreeSWITCH (`switch_separate_string`), so every value we pass is checked here
for characters that would change its meaning; the one place that knows those rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

# Events the controller needs beyond `myevents`: playback tracking, DTMF, and mod_audio_fork (§1.5, §3.3, §9).
FORK_SUBCLASSES = (
    "mod_audio_fork::connect",
    "mod_audio_fork::connect_failed",
    "mod_audio_fork::disconnect",
    "mod_audio_fork::error",
    "mod_audio_fork::json",
    "mod_audio_fork::transcription",
    "mod_audio_fork::buffer_overrun",
)
SUBSCRIBED_EVENTS = ("PLAYBACK_START", "PLAYBACK_STOP", "DTMF", "CHANNEL_HANGUP_COMPLETE")

_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_./:@+=,{}\-]+$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _token(value: str, what: str) -> str:
    if not _SAFE_TOKEN.match(value):
        raise ValueError(f"{what} {value!r} has characters FreeSWITCH would split or strip")
    return value


def event_subscription() -> str:
    return "event plain " + " ".join((*SUBSCRIBED_EVENTS, "CUSTOM", *FORK_SUBCLASSES))


def playback_path(path: str, tags: Mapping[str, str | int]) -> str:
    """`{k=v,…}/path.wav`: every tag comes back as a header on PLAYBACK_START/STOP (§1.8)."""
    inner = ",".join(f"{_token(k, 'tag')}={_token(str(v), 'tag value')}" for k, v in tags.items())
    return _token(f"{{{inner}}}{path}" if inner else path, "playback path")


def uuid_break(uuid: str) -> str:
    # `all` also flushes queued private events; without it the next queued chunk would start (§4).
    return f"uuid_break {_token(uuid, 'uuid')} all"


def uuid_transfer(uuid: str, extension: str, dialplan: str, context: str) -> str:
    return f"uuid_transfer {_token(uuid, 'uuid')} {_token(extension, 'extension')} " \
           f"{_token(dialplan, 'dialplan')} {_token(context, 'context')}"


def uuid_kill(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    return f"uuid_kill {_token(uuid, 'uuid')} {_token(cause, 'cause')}"


def clean_value(value: str, limit: int = 480) -> str:
    """A channel-variable value FreeSWITCH keeps intact: one line, no quotes or backslashes, bounded."""
    text = re.sub(r"[\r\n\t]+", " ", value)
    text = re.sub(r"['\"\\]", "", text)
    return re.sub(r" {2,}", " ", text).strip()[:limit] or "-"


def uuid_setvar(uuid: str, name: str, value: str) -> str:
    if not _VAR_NAME.match(name):
        raise ValueError(f"bad channel variable name {name!r}")
    # uuid_setvar splits into at most 3 arguments, so the value may contain spaces (§4).
    return f"uuid_setvar {_token(uuid, 'uuid')} {name} {clean_value(value)}"


def fork_metadata(fields: Mapping[str, str | int]) -> str:
    text = json.dumps(dict(fields), separators=(",", ":"), ensure_ascii=True)
    # Metadata is one argument: no spaces, single quotes or backslashes (§3.1, §9), at most 8192 bytes.
    if re.search(r"[\s'\\]", text) or len(text) > 8192:
        raise ValueError("fork metadata must be compact JSON without spaces, quotes or backslashes")
    return text


def uuid_audio_fork_start(uuid: str, url: str, rate: int, bug: str, metadata: Mapping[str, str | int]) -> str:
    rate_arg = {8000: "8k", 16000: "16k"}[rate]
    return f"uuid_audio_fork {_token(uuid, 'uuid')} start {_token(url, 'url')} mono {rate_arg} " \
           f"{_token(bug, 'bug')} '{fork_metadata(metadata)}'"


def uuid_audio_fork_stop(uuid: str, bug: str) -> str:
    return f"uuid_audio_fork {_token(uuid, 'uuid')} stop {_token(bug, 'bug')}"


def api_ok(reply: str) -> bool:
    """api bodies start with +OK on success (`+OK\\n`, `+OK Success\\n`, `+OK Message sent\\n`)."""
    return reply.startswith("+OK")

