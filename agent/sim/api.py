"""`api` commands the simulator knows, with mod_commands / mod_audio_fork replies (freeswitch.md §3.1, §4).

Each returns the api/response body; an empty string becomes `-ERR no reply\\n` on the wire, as in
api_exec(). Unknown commands answer `-ERR <cmd> Command not found!\\n`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.sim.executor import PrivateEvent
from agent.sim.fsutil import atoi, separate_string, words

if TYPE_CHECKING:
    from agent.sim.channel import Channel
    from agent.sim.listener import OutboundListener

BROADCAST_USAGE = "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
BREAK_USAGE = "-USAGE: <uuid> [all]\n"
TRANSFER_USAGE = "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
SETVAR_USAGE = "-USAGE: <uuid> <var> [value]\n"
SETVAR_MULTI_USAGE = "-USAGE: <uuid> <var>=<value>;<var>=<value>...\n"
GETVAR_USAGE = "-USAGE: <uuid> <var>\n"
KILL_USAGE = "-USAGE: <uuid> [cause]\n"
FORK_USAGE = ("-USAGE: <uuid> [start | stop | send_text | pause | resume | graceful-shutdown ] "
              "[wss-url | path] [mono | mixed | stereo] [8000 | 16000 | 24000 | 32000 | 64000] "
              "[bugname] [metadata]\n")
NO_CHANNEL = "-ERR No such channel!\n"
FILEMAN_USAGE = "-USAGE: <uuid> <cmd>:<val>\n"
RECORD_USAGE = "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"
FORK_OK, FORK_FAILED = "+OK Success\n", "-ERR Operation Failed\n"
DEFAULT_BUG = "audio_fork"
# Hangup causes and their Q.850 codes (switch_channel_cause_q850 reports 16 for FreeSWITCH-only causes).
Q850 = {"UNSPECIFIED": 0, "UNALLOCATED_NUMBER": 1, "NO_ROUTE_DESTINATION": 3, "NORMAL_CLEARING": 16,
        "USER_BUSY": 17, "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "CALL_REJECTED": 21, "NUMBER_CHANGED": 22,
        "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28, "NORMAL_UNSPECIFIED": 31,
        "NORMAL_TEMPORARY_FAILURE": 41, "RECOVERY_ON_TIMER_EXPIRE": 102}
HANGUP_CAUSES = frozenset(Q850) | frozenset(words(
    "ORIGINATOR_CANCEL MANAGER_REQUEST SYSTEM_SHUTDOWN ALLOTTED_TIMEOUT LOSE_RACE ATTENDED_TRANSFER "
    "BLIND_TRANSFER"))


def str2cause(text: str) -> str:
    """switch_channel_str2cause: a name (any case) or a Q.850 number; unknown → NORMAL_CLEARING."""
    text = text.strip().upper()
    if text.isdigit():
        return next((name for name, code in Q850.items() if code == int(text)), "NORMAL_CLEARING")
    return text if text in HANGUP_CAUSES else "NORMAL_CLEARING"


def run_api(listener: OutboundListener, name: str, arg: str | None) -> str:
    """switch_api_execute for one command; `arg` is None when the line had no space after the name."""
    handler = _APIS.get(name)
    if handler is None:
        return f"-ERR {name} Command not found!\n"
    return handler(listener, arg)


def _locate(listener: OutboundListener, uuid: str) -> Channel | None:
    return listener.sim.locate(uuid)


def uuid_broadcast(listener: OutboundListener, arg: str | None) -> str:
    argv = separate_string(arg or "", " ", 4)
    if not arg or len(argv) < 2:
        return BROADCAST_USAGE
    ch = _locate(listener, argv[0])
    if ch is None:
        return "-ERR invalid uuid\n"
    path, app, cause = argv[1], "playback", None
    first_colon = path.find(":")
    if first_colon >= 0 and path[first_colon + 1:first_colon + 2] == ":":
        app, path = path[:first_colon], path[first_colon + 2:]
    if "!" in app:
        app, _, cause = app.partition("!")
        cause = cause or "normal_clearing"
    legs = argv[2].lower() if len(argv) > 2 else "aleg"
    if "aleg" in legs or "both" in legs:
        ch.executor.enqueue(PrivateEvent([("call-command", "execute"), ("execute-app-name", app),
                                          ("execute-app-arg", path), ("event-lock", "true"),
                                          ("lead-frames", "5")]))
    if cause:
        ch.executor.enqueue(PrivateEvent([("call-command", "execute"), ("execute-app-name", "hangup"),
                                          ("execute-app-arg", cause), ("event-lock", "true")]))
    return "+OK Message sent\n"


def uuid_break(listener: OutboundListener, arg: str | None) -> str:
    if not arg:
        return BREAK_USAGE
    uuid, _, flags = arg.partition(" ")
    ch = _locate(listener, uuid)
    if ch is None:
        return NO_CHANNEL
    ch.executor.uuid_break("all" in flags)
    return "+OK\n"


def uuid_transfer(listener: OutboundListener, arg: str | None) -> str:
    argv = separate_string(arg or "", " ", 5)
    if not arg or not 2 <= len(argv) <= 5:
        return TRANSFER_USAGE
    ch = _locate(listener, argv[0]) if argv[0] else None
    if ch is None:
        return NO_CHANNEL
    rest = argv[2:] if argv[1].startswith("-") else argv[1:]
    if not rest:
        return TRANSFER_USAGE
    dialplan = rest[1] if len(rest) > 1 else None
    context = rest[2] if len(rest) > 2 else None
    return "+OK\n" if ch.transfer(rest[0], dialplan, context, via="uuid_transfer") else "-ERR\n"


def uuid_setvar(listener: OutboundListener, arg: str | None) -> str:
    argv = separate_string(arg or "", " ", 3)
    if not arg or len(argv) not in (2, 3) or not argv[0]:
        return SETVAR_USAGE
    ch = _locate(listener, argv[0])
    if ch is None:
        return NO_CHANNEL
    if not argv[1]:
        return "-ERR No variable specified\n"
    ch.set_var(argv[1], argv[2] if len(argv) == 3 else None)
    return "+OK\n"


def uuid_setvar_multi(listener: OutboundListener, arg: str | None) -> str:
    uuid, sep, assignments = (arg or "").partition(" ")
    if not sep:
        return SETVAR_MULTI_USAGE
    ch = _locate(listener, uuid)
    if ch is None:
        return NO_CHANNEL + SETVAR_MULTI_USAGE      # the usage line follows, as in mod_commands.c
    out, count = "", 0
    for item in separate_string(assignments, ";", 64):
        name, _, value = item.partition("=")
        if not name:
            out += "-ERR No variable specified\n"
            continue
        ch.set_var(name, value or None)
        count += 1
    return "+OK\n" if count else out + SETVAR_MULTI_USAGE


def uuid_getvar(listener: OutboundListener, arg: str | None) -> str:
    argv = separate_string(arg or "", " ", 4)
    if not arg or len(argv) < 2 or not argv[0]:
        return GETVAR_USAGE
    ch = _locate(listener, argv[0])
    if ch is None:
        return NO_CHANNEL
    if not argv[1]:
        return "-ERR No variable name specified!\n"
    value = ch.variables.get(argv[1])
    return "_undef_" if value is None else value


def uuid_kill(listener: OutboundListener, arg: str | None) -> str:
    if not arg:
        return KILL_USAGE
    uuid, _, cause = arg.partition(" ")
    ch = _locate(listener, uuid)
    if ch is None:
        return NO_CHANNEL
    ch.hangup(cause or "NORMAL_CLEARING", by="agent_hangup")
    return "+OK\n"


def uuid_answer(listener: OutboundListener, arg: str | None) -> str:
    ch = _locate(listener, arg) if arg else None
    if ch is None or not ch.up:
        return "-ERROR\n"
    ch.answer()
    return "+OK\n"


def uuid_exists(listener: OutboundListener, arg: str | None) -> str:
    return "true" if arg and _locate(listener, arg) is not None else "false"


def uuid_audio_fork(listener: OutboundListener, arg: str | None) -> str:
    """fork_function in drachtio's mod_audio_fork.c: at most 7 arguments, `{`/`[` picks metadata."""
    argv = separate_string(arg or "", " ", 7)
    if not arg or len(argv) < 2 or (argv[1] == "start" and len(argv) < 5):
        return FORK_USAGE
    ch = _locate(listener, argv[0])
    if ch is None:
        return FORK_FAILED
    sub = argv[1].lower()
    if sub in ("stop", "send_text"):
        if sub == "send_text" and len(argv) < 3:
            return FORK_FAILED
        bug, text = DEFAULT_BUG, None
        if len(argv) > 3:
            bug, text = argv[2], argv[3]
        elif len(argv) > 2:
            if argv[2][:1] in ("{", "["):
                text = argv[2]
            else:
                bug = argv[2]
        if sub == "stop":
            return FORK_OK if ch.stop_fork(bug, text) else FORK_FAILED
        fork = ch.bugs.get(bug)
        if fork is None:
            return FORK_FAILED
        if text is not None:
            fork.send_text(text)
        return FORK_OK
    if sub in ("pause", "resume", "graceful-shutdown"):
        fork = ch.bugs.get(argv[2] if len(argv) > 2 else DEFAULT_BUG)
        if fork is None:
            return FORK_FAILED
        if sub == "graceful-shutdown":
            fork.graceful_shutdown()
        else:
            fork.paused = sub == "pause"
        return FORK_OK
    if sub != "start":
        return FORK_FAILED
    bug, metadata = DEFAULT_BUG, None
    if len(argv) > 6:
        bug, metadata = argv[5], argv[6]
    elif len(argv) > 5:
        if argv[5][:1] in ("{", "["):
            metadata = argv[5]
        else:
            bug = argv[5]
    mix = argv[3]
    if mix not in ("mono", "mixed", "stereo"):
        return ""                  # logged and `goto done` with nothing written
    rate = {"16k": 16000, "8k": 8000}.get(argv[4])
    if rate is None:
        rate = int(argv[4]) if argv[4].isdigit() else 0
    return FORK_OK if ch.start_fork(bug, argv[2], mix, rate, metadata) else FORK_FAILED


def uuid_fileman(listener: OutboundListener, arg: str | None) -> str:
    """switch_ivr_process_fh on the playing file: pause toggles, volume/seek/restart/stop (§10)."""
    argv = separate_string(arg or "", " ", 4)
    if len(argv) < 2 or not argv[0]:
        return FILEMAN_USAGE
    ch = _locate(listener, argv[0])
    if ch is None:
        return NO_CHANNEL
    po = ch.executor.file_handle
    if po is None:
        return "-ERR No file handle!\n"
    po.command(argv[1])
    heard = ch.log.heard[-1] if ch.log.heard else None
    if heard is not None and heard.segments is po.segments:
        heard.fileman.append((time.monotonic(), argv[1]))
    ch.executor.wake()
    ch.notify()
    return "+OK\n"


def uuid_record(listener: OutboundListener, arg: str | None) -> str:
    """`<uuid> start|stop|mask|unmask <path> [<limit>]` (mod_commands session_record_function)."""
    argv = separate_string(arg or "", " ", 5)
    if len(argv) < 3 or not argv[0]:
        return RECORD_USAGE
    ch = _locate(listener, argv[0])
    if ch is None:
        return "-ERR Cannot locate session!\n"
    action, path = argv[1].lower(), argv[2]
    if action == "start":
        limit = atoi(argv[3]) if len(argv) > 3 else 0
        return "+OK Success\n" if ch.recorder.start(path, limit) else "-ERR Cannot record session!\n"
    if action == "stop":
        return "+OK Success\n" if ch.recorder.stop(path) else "-ERR Cannot stop record session!\n"
    if action in ("mask", "unmask"):
        ok = ch.recorder.mask(path, action == "mask")
        return "+OK Success\n" if ok else f"-ERR Cannot {action} recording session!\n"
    if action in ("pause", "resume"):
        ok = ch.recorder.mask(path, action == "pause", pause=True)
        return "+OK Success\n" if ok else f"-ERR Cannot {action} recording session!\n"
    return RECORD_USAGE


_APIS: dict[str, Callable[[OutboundListener, str | None], str]] = {
    "uuid_fileman": uuid_fileman,
    "uuid_record": uuid_record,
    "uuid_broadcast": uuid_broadcast,
    "uuid_break": uuid_break,
    "uuid_transfer": uuid_transfer,
    "uuid_setvar": uuid_setvar,
    "uuid_setvar_multi": uuid_setvar_multi,
    "uuid_getvar": uuid_getvar,
    "uuid_kill": uuid_kill,
    "uuid_answer": uuid_answer,
    "uuid_exists": uuid_exists,
    "uuid_audio_fork": uuid_audio_fork,
}
