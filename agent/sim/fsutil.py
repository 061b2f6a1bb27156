"""Small FreeSWITCH string rules the simulator must reproduce (freeswitch.md §3.1, §1.8, §3.3).

switch_separate_string (argument splitting with quotes, escapes and the `^^<d>` delimiter switch), the
`{k=v}` file-parameter prefix, cJSON's compact printing, and the event-name table.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

ESCAPE_META = "\\"
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def words(text: str) -> tuple[str, ...]:
    """A whitespace-separated list of names (keeps the long tables below readable)."""
    return tuple(text.split())


# EVENT_NAMES in switch_event.c, in enum order (ALL last).
EVENT_NAMES = words(
    "CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER "
    "CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE "
    "CHANNEL_HOLD CHANNEL_UNHOLD "
    "CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_OUTGOING CHANNEL_PARK "
    "CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID API LOG INBOUND_CHAN OUTBOUND_CHAN "
    "STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK NOTALK SESSION_CRASH MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE "
    "PRESENCE_IN NOTIFY_IN PRESENCE_OUT PRESENCE_PROBE MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC "
    "BACKGROUND_JOB DETECTED_SPEECH DETECTED_TONE PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE "
    "EXE_SCHEDULE RE_SCHEDULE RELOADXML NOTIFY PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE "
    "RECV_MESSAGE REQUEST_PARAMS CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED "
    "SERVER_DISCONNECTED SEND_INFO RECV_INFO RECV_RTCP_MESSAGE SEND_RTCP_MESSAGE CALL_SECURE NAT "
    "RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP CALL_UPDATE FAILURE SOCKET_DATA "
    "MEDIA_BUG_START MEDIA_BUG_STOP CONFERENCE_DATA_QUERY CONFERENCE_DATA CALL_SETUP_REQ "
    "CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE TEXT SHUTDOWN_REQUESTED CERT_RELOAD ALL"
)
_EVENT_BY_UPPER = {name: name for name in EVENT_NAMES}

# The `myevents` list (§1.5).
MYEVENTS = frozenset(words(
    "CHANNEL_ANSWER CHANNEL_APPLICATION CHANNEL_BRIDGE CHANNEL_CREATE CHANNEL_DATA CHANNEL_DESTROY "
    "CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_ORIGINATE "
    "CHANNEL_UUID CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_STATE "
    "CHANNEL_UNBRIDGE CHANNEL_UNPARK DETECTED_SPEECH DTMF NOTALK TALK"
))

# Events that carry variable_* headers (switch_channel_event_set_extended_data; §1.8). Not DTMF/STATE.
VARIABLE_EVENTS = frozenset(words(
    "CHANNEL_CREATE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_ANSWER CHANNEL_PARK CHANNEL_UNPARK CHANNEL_BRIDGE "
    "CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE "
    "REQUEST_PARAMS CHANNEL_DATA CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_DESTROY SESSION_HEARTBEAT "
    "API RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP CALL_UPDATE MEDIA_BUG_START MEDIA_BUG_STOP "
    "CHANNEL_HOLD CHANNEL_UNHOLD TEXT CUSTOM"
))


def name_event(token: str) -> str | None:
    """switch_name_event: case-insensitive, and a `SWITCH_EVENT_` prefix (13 chars) is accepted."""
    upper = token.upper()
    if len(upper) > 13 and upper[13:] in _EVENT_BY_UPPER:
        return upper[13:]
    return _EVENT_BY_UPPER.get(upper)


def separate_string(buf: str, delim: str = " ", arraylen: int = 64) -> list[str]:
    """switch_separate_string (switch_utils.c).

    `^^<d>` at the start switches the delimiter to <d>. At most `arraylen` pieces: the last one keeps the
    rest of the input, spaces included. Single quotes group and are stripped, `\\` escapes are resolved,
    and each piece loses its leading and trailing spaces.
    """
    if buf.startswith("^^") and len(buf) >= 4:
        delim, buf = buf[2], buf[3:]
    if not buf or arraylen <= 0:
        return []
    pieces = _split_blank(buf, arraylen) if delim == " " else _split_char(buf, delim, arraylen)
    return [_cleanup(piece, "" if delim == " " else delim) for piece in pieces]


def _split_blank(buf: str, arraylen: int) -> list[str]:
    starts: list[int] = []
    ends: list[int] = []
    i, n, quoted, state = 0, len(buf), False, "start"
    # The loop stops as soon as `arraylen` pieces have started, so the last one keeps the rest.
    while i < n and len(starts) < arraylen:
        if state == "start":
            starts.append(i)
            state = "skip_initial"
        elif state == "skip_initial":
            if buf[i] == " ":
                i += 1
            else:
                state = "find"
        elif state == "find":
            if buf[i] == ESCAPE_META:
                i += 1
            elif buf[i] == "'":
                quoted = not quoted
            elif buf[i] == " " and not quoted:
                ends.append(i)
                state = "skip_end"
            i += 1
        elif buf[i] == " ":
            i += 1
        else:
            state = "start"
    ends += [n] * (len(starts) - len(ends))
    return [buf[s:e] for s, e in zip(starts, ends, strict=True)]


def _split_char(buf: str, delim: str, arraylen: int) -> list[str]:
    starts: list[int] = []
    ends: list[int] = []
    i, n, quoted, state = 0, len(buf), False, "start"
    while i < n and len(starts) < arraylen:
        if state == "start":
            starts.append(i)
            state = "find"
            continue
        c = buf[i]
        if c == ESCAPE_META:
            i += 1
        elif c == "'" and (quoted or "'" in buf[i + 1:]):
            quoted = not quoted
        elif c == delim and not quoted:
            ends.append(i)
            state = "start"
        i += 1
    ends += [n] * (len(starts) - len(ends))
    return [buf[s:e] for s, e in zip(starts, ends, strict=True)]


def _cleanup(piece: str, delim: str) -> str:
    """cleanup_separated_string: resolve escapes, strip quotes, trim spaces outside quotes."""
    i = 0
    while i < len(piece) and piece[i] == " ":
        i += 1
    out: list[str] = []
    end = 0
    quoted = False
    n = len(piece)
    while i < n:
        c = piece[i]
        if c == ESCAPE_META and i + 1 < n:
            e = piece[i + 1]
            mapped = _UNESCAPE.get(e, e)
            if e in ("'", '"', ESCAPE_META) or (delim and e == delim) or mapped != e:
                out.append(mapped)
                end = len(out)
                i += 2
                continue
        if c == "'" and (quoted or "'" in piece[i + 1:]):
            quoted = not quoted
            if quoted:
                end = len(out)
        else:
            out.append(c)
            if c != " " or quoted:
                end = len(out)
        i += 1
    return "".join(out[:end])


def split_file_params(path: str) -> tuple[dict[str, str], str]:
    """`{k=v,k2=v2}/tmp/x.wav` → ({k: v, k2: v2}, "/tmp/x.wav"); several `{…}` groups merge (§1.8)."""
    params: dict[str, str] = {}
    rest = path
    while rest.startswith("{"):
        depth, close = 0, -1
        for i, c in enumerate(rest):
            depth += (c == "{") - (c == "}")
            if depth == 0:
                close = i
                break
        if close < 0:
            break
        for item in separate_string(rest[1:close], ",", 128):
            name, sep, value = item.partition("=")
            if sep and name:
                params[name] = value
        rest = rest[close + 1:].lstrip(" ")
    return params, rest


def cjson_dumps(value: Any) -> str:
    """cJSON_PrintUnformatted: no spaces, UTF-8 kept, integral doubles printed as integers."""
    return json.dumps(_cjson_numbers(value), ensure_ascii=False, separators=(",", ":"))


def _cjson_numbers(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        if value.is_integer() and abs(value) < 2**63:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _cjson_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cjson_numbers(v) for v in value]
    return value


LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "notice": 5,
              "info": 6, "debug": 7}


def log_level(token: str) -> int | None:
    """switch_log_str2level: a name or a digit 0-7; empty means debug."""
    if not token:
        return 7
    if token.isdigit():
        level = int(token)
        return level if 0 <= level <= 7 else None
    return LOG_LEVELS.get(token.lower())


def atoi(text: str) -> int:
    """C atoi: optional leading spaces and sign, then digits; anything else gives 0."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def is_true(value: str | None) -> bool:
    """switch_true: yes/on/true/t/enabled/active/allow, or a non-zero number."""
    text = (value or "").strip().lower()
    if text in ("yes", "on", "true", "t", "enabled", "active", "allow"):
        return True
    return text.lstrip("+-").isdigit() and atoi(text) != 0
