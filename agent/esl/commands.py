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
SUBSCRIBED_EVENTS = ("PLAYBACK_START", "PLAYBACK_STOP", "DTMF", "CHANNEL_HANGUP_COMPLETE",
                     "CHANNEL_EXECUTE_COMPLETE", "RECORD_START", "RECORD_STOP")

_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_./:@+=,{}\-]+$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _token(value: str, what: str) -> str:
    if not _SAFE_TOKEN.fullmatch(value):  # not .match: `$` would let a trailing newline through
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
    if not _VAR_NAME.fullmatch(name):
        raise ValueError(f"bad channel variable name {name!r}")
    # uuid_setvar splits into at most 3 arguments, so the value may contain spaces (§4).
    return f"uuid_setvar {_token(uuid, 'uuid')} {name} {clean_value(value)}"


# FreeSWITCH's argument splitter strips single quotes and processes backslash escapes (§3.1), so neither may
# reach it inside the metadata; look-alikes keep a value readable. Control characters become spaces.
# A double quote would come out of json.dumps as `\"`, so it gets a look-alike too.
_METADATA_SUBSTITUTES = str.maketrans({"'": "\u2019", '"': "\u201d", "\\": "\uff3c", "\x7f": " ",
                                       **{chr(c): " " for c in range(32)}})
MetadataValue = str | int | float | bool | list[str]


def _metadata_value(value: MetadataValue) -> MetadataValue:
    if isinstance(value, str):
        return value.translate(_METADATA_SUBSTITUTES)
    if isinstance(value, list):
        return [str(v).translate(_METADATA_SUBSTITUTES) for v in value]
    return value


def fork_metadata(fields: Mapping[str, MetadataValue]) -> str:
    """Compact JSON, UTF-8 kept as is (a `\\uXXXX` escape would carry a backslash): any Unicode tenant survives.

    Wrapped in single quotes by the caller, so spaces inside values stay in the one argument (§10: the last
    argument keeps its spaces). At most 8192 bytes, mod_audio_fork's cap.
    """
    text = json.dumps({k: _metadata_value(v) for k, v in fields.items()}, separators=(",", ":"),
                      ensure_ascii=False)
    if "'" in text or "\\" in text:
        raise ValueError("fork metadata must not contain single quotes or backslashes")
    if len(text.encode("utf-8")) > 8192:
        raise ValueError("fork metadata is longer than mod_audio_fork's 8192 bytes")
    return text


def uuid_audio_fork_start(uuid: str, url: str, rate: int, bug: str, metadata: Mapping[str, MetadataValue], *,
                          mix: str = "mono") -> str:
    rate_arg = {8000: "8k", 16000: "16k"}[rate]
    if mix not in ("mono", "stereo", "mixed"):
        raise ValueError(f"fork mix must be mono, stereo or mixed, got {mix!r}")
    return f"uuid_audio_fork {_token(uuid, 'uuid')} start {_token(url, 'url')} {mix} {rate_arg} " \
           f"{_token(bug, 'bug')} '{fork_metadata(metadata)}'"


def uuid_audio_fork_stop(uuid: str, bug: str) -> str:
    return f"uuid_audio_fork {_token(uuid, 'uuid')} stop {_token(bug, 'bug')}"


def uuid_fileman(uuid: str, command: str) -> str:
    """`pause` toggles pause on the file now playing; `-ERR No file handle!` when none is (§10)."""
    if not re.fullmatch(r"(pause|stop|restart|volume:[+-]?\d+|seek:[+-]?\d+)", command):
        raise ValueError(f"unknown fileman command {command!r}")
    return f"uuid_fileman {_token(uuid, 'uuid')} {command}"


def uuid_record(uuid: str, action: str, path: str) -> str:
    """`start|stop|mask|unmask`; mask writes silence until unmask (PCI pause and resume, §4)."""
    if action not in ("start", "stop", "mask", "unmask"):
        raise ValueError(f"unknown uuid_record action {action!r}")
    return f"uuid_record {_token(uuid, 'uuid')} {action} {_token(path, 'recording path')}"


def api_ok(reply: str) -> bool:
    """api bodies start with +OK on success (`+OK\\n`, `+OK Success\\n`, `+OK Message sent\\n`)."""
    return reply.startswith("+OK")

