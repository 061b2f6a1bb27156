"""The ESL connection against a FreeSWITCH peer on a socketpair that speaks the wire format of freeswitch.md §1.1
(header blocks ending in a blank line, Content-Length bodies, URL-encoded outer values in plain events): the bytes
each command puts on the wire, replies matched in command order even around events and a timed-out command,
disconnect notices, and every waiter woken with CallGone when the socket goes."""

from __future__ import annotations

import json

import gevent
import pytest
from gevent import socket as gsocket

from agent.esl.codec import Event
from agent.esl.connection import Closed, Disconnect, EslConnection
from agent.esl.errors import CallGone, CommandFailed, ReplyTimeout

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


def reply(text: str = "+OK") -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_response(body: str) -> bytes:
    data = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def plain_event(name: str, **headers: str) -> bytes:
    body = f"Event-Name: {name}\nUnique-ID: {UUID}\n" + "".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n"
    data = body.encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(data) + data


class Peer:
    """The FreeSWITCH end: reads what the agent sent, writes what FreeSWITCH would."""

    def __init__(self) -> None:
        self.sock, theirs = gsocket.socketpair()
        self.conn = EslConnection(theirs, reply_timeout=2.0)
        self.conn.start()
        self.buf = b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_command(self) -> bytes:
        """One command as sent: up to its blank line, plus a Content-Length body."""
        with gevent.Timeout(2):
            while b"\n\n" not in self.buf:
                self.buf += self.sock.recv(4096)
        head, _, rest = self.buf.partition(b"\n\n")
        length = 0
        for line in head.split(b"\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        with gevent.Timeout(2):
            while len(rest) < length:
                rest += self.sock.recv(4096)
        self.buf = rest[length:]
        return head + b"\n\n" + rest[:length]

    def ask(self, fn, *args, **kw) -> gevent.Greenlet:
        g = gevent.spawn(fn, *args, **kw)
        gevent.sleep(0)
        return g

    def next_event(self):
        return self.conn.events.get(timeout=2)


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.conn.close()
    p.sock.close()


def test_connect_returns_the_channel_dump_decoded(peer):
    g = peer.ask(peer.conn.send, "connect")
    assert peer.read_command() == b"connect\n\n"
    peer.write(b"Event-Name: CHANNEL_DATA\nUnique-ID: " + UUID.encode() + b"\nCaller-Caller-ID-Number: 01012345678\n"
               b"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n")
    message = g.get(timeout=2)
    assert message.headers["Unique-ID"] == UUID and message.headers["Caller-Caller-ID-Number"] == "01012345678"
    assert message.reply_text.startswith("+OK")


def test_a_command_with_headers_and_a_body_goes_out_as_one_block(peer):
    g = peer.ask(peer.conn.command, "sendevent CUSTOM", {"Event-Subclass": "x::y"}, "본문")
    body = "본문".encode()
    assert peer.read_command() == b"sendevent CUSTOM\nEvent-Subclass: x::y\nContent-Length: %d\n\n" % len(body) + body
    peer.write(reply("+OK 1234"))
    assert g.get(timeout=2) == "+OK 1234"


def test_a_command_freeswitch_refuses_raises_with_its_reply(peer):
    g = peer.ask(peer.conn.command, "linger 30")
    assert peer.read_command() == b"linger 30\n\n"
    peer.write(reply("-ERR command not found"))
    with pytest.raises(CommandFailed) as err:
        g.get(timeout=2)
    assert err.value.reply == "-ERR command not found"


def test_api_returns_the_body_and_checks_it_unless_told_not_to(peer):
    g = peer.ask(peer.conn.api, f"uuid_break {UUID} all")
    assert peer.read_command() == f"api uuid_break {UUID} all\n\n".encode()
    peer.write(api_response("+OK\n"))
    assert g.get(timeout=2) == "+OK\n"
    g = peer.ask(peer.conn.api, f"uuid_kill {UUID}")
    peer.read_command()
    peer.write(api_response("-ERR No such channel!\n"))
    with pytest.raises(CommandFailed) as err:
        g.get(timeout=2)
    assert err.value.reply == "-ERR No such channel!\n"
    g = peer.ask(peer.conn.api, f"uuid_fileman {UUID} pause", check=False)
    peer.read_command()
    peer.write(api_response("-ERR No file handle!\n"))
    assert g.get(timeout=2) == "-ERR No file handle!\n"


def test_sendmsg_carries_the_app_its_argument_the_lock_and_the_application_uuid(peer):
    g = peer.ask(peer.conn.sendmsg, "playback", "{utt_id=r1,chunk=0}/tmp/a.wav", app_uuid="app-1")
    assert peer.read_command() == (b"sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
                                   b"execute-app-arg: {utt_id=r1,chunk=0}/tmp/a.wav\nevent-lock: true\n"
                                   b"Event-UUID: app-1\n\n")
    peer.write(reply("+OK"))
    assert g.get(timeout=2) == "+OK"
    g = peer.ask(peer.conn.sendmsg, "answer", event_lock=False)
    assert peer.read_command() == b"sendmsg\ncall-command: execute\nexecute-app-name: answer\n\n"
    peer.write(reply("+OK"))
    g.get(timeout=2)


def test_replies_are_matched_in_command_order_with_events_in_between(peer):
    first = peer.ask(peer.conn.api, "status", check=False)
    second = peer.ask(peer.conn.command, "myevents")
    peer.read_command()
    peer.read_command()
    peer.write(plain_event("CUSTOM", **{"Event-Subclass": "mod_audio_fork%3A%3Ajson"}) + api_response("UP 0 years")
               + plain_event("DTMF", **{"DTMF-Digit": "5"}) + reply("+OK Events Enabled"))
    assert first.get(timeout=2) == "UP 0 years"
    assert second.get(timeout=2) == "+OK Events Enabled"
    custom, dtmf = peer.next_event(), peer.next_event()
    assert isinstance(custom, Event) and custom.subclass == "mod_audio_fork::json"
    assert dtmf.name == "DTMF" and dtmf.get("DTMF-Digit") == "5"


def test_a_timed_out_command_keeps_the_order_for_the_next(peer):
    g = peer.ask(peer.conn.send, "api slow", timeout=0.05)
    with pytest.raises(ReplyTimeout) as err:
        g.get(timeout=2)
    assert "'api'" in str(err.value)
    g2 = peer.ask(peer.conn.command, "myevents")
    peer.write(api_response("late\n"))  # the slow command's reply, late
    peer.write(reply("+OK mine"))
    assert g2.get(timeout=2) == "+OK mine"


def test_the_connections_own_reply_timeout_applies_when_none_is_given():
    ours, theirs = gsocket.socketpair()
    conn = EslConnection(theirs, reply_timeout=0.05)
    conn.start()
    g = gevent.spawn(conn.send, f"api uuid_break {UUID} all")
    g.join(3)  # far past 0.05 s; a guard here would be turned into ReplyTimeout by the wait it interrupts
    assert g.ready() and isinstance(g.exception, ReplyTimeout)
    assert str(g.exception) == "no reply to 'api'"
    conn.close()
    ours.close()


def test_an_api_timeout_given_wins_over_the_connections(peer):
    peer.conn.reply_timeout = 60
    g = gevent.spawn(peer.conn.api, "status", timeout=0.05)
    g.join(3)
    assert g.ready() and isinstance(g.exception, ReplyTimeout)


def test_an_api_body_that_is_not_utf8_is_read_with_replacements(peer):
    g = peer.ask(peer.conn.api, "status", check=False)
    peer.read_command()
    peer.write(b"Content-Type: api/response\nContent-Length: 5\n\n+OK \xff")
    assert g.get(timeout=2) == "+OK \ufffd"


def test_a_reply_nobody_waits_for_is_dropped(peer):
    peer.write(reply("+OK stray"))
    g = peer.ask(peer.conn.command, "myevents")
    gevent.sleep(0.05)
    peer.write(reply("+OK mine"))
    assert g.get(timeout=2) == "+OK mine"


def test_disconnect_notices_say_linger_or_disconnect(peer):
    peer.write(b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: " + UUID.encode()
               + b"\nContent-Disposition: linger\nLinger-Time: 30\nContent-Length: 0\n\n")
    assert peer.next_event() == Disconnect("linger")
    goodbye = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    peer.write(b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(goodbye) + goodbye)
    assert peer.next_event() == Disconnect("disconnect")


def test_messages_nobody_subscribed_to_are_ignored(peer):
    peer.write(b"Content-Type: log/data\nContent-Length: 3\n\nabc" + plain_event("DTMF"))
    assert peer.next_event().name == "DTMF"


def test_when_freeswitch_closes_every_waiter_gets_call_gone(peer):
    a = peer.ask(peer.conn.api, "status")
    b = peer.ask(peer.conn.command, "myevents")
    peer.read_command()
    peer.read_command()
    peer.sock.close()
    for g in (a, b):
        with pytest.raises(CallGone, match="eof"):
            g.get(timeout=2)
    assert peer.next_event() == Closed("eof") and peer.conn.closed
    with pytest.raises(CallGone) as gone:
        peer.conn.command("exit")
    assert str(gone.value) == "socket closed"


def test_bytes_that_are_not_esl_drop_the_connection(peer):
    g = peer.ask(peer.conn.command, "myevents")
    peer.write(b"this line has no colon\n\n")
    with pytest.raises(CallGone, match="protocol error"):
        g.get(timeout=2)
    closed = peer.next_event()
    assert isinstance(closed, Closed) and closed.reason.startswith("protocol error: ")


def test_closing_ends_the_socket_and_tells_the_event_reader_once(peer):
    peer.conn.close()
    peer.conn.close()
    assert peer.next_event() == Closed("closed by agent")
    with gevent.Timeout(2):
        assert peer.sock.recv(10) == b""
    gevent.sleep(0.01)
    assert peer.conn.events.qsize() == 0


class BrokenSocket:
    def __init__(self) -> None:
        self.closed = False

    def sendall(self, data: bytes) -> None:
        raise BrokenPipeError("broken pipe")

    def recv(self, n: int) -> bytes:
        gevent.sleep(10)
        return b""

    def close(self) -> None:
        self.closed = True


def test_a_send_that_fails_ends_the_call():
    sock = BrokenSocket()
    conn = EslConnection(sock)
    with pytest.raises(CallGone, match="broken pipe"):
        conn.command("myevents")
    assert conn.closed and sock.closed
    assert conn.events.get(timeout=1).reason.startswith("send failed: ")


def test_a_socket_error_while_reading_ends_the_call():
    class ResetSocket(BrokenSocket):
        def recv(self, n: int) -> bytes:
            raise ConnectionResetError("reset by peer")

    conn = EslConnection(ResetSocket())
    conn.start()
    closed = conn.events.get(timeout=2)
    assert isinstance(closed, Closed) and closed.reason.startswith("socket error: ") and "reset" in closed.reason


def test_json_events_are_events_too(peer):
    body = json.dumps({"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_fork::json", "Unique-ID": UUID,
                       "_body": "{}", "Content-Length": "2"}).encode()
    peer.write(b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body)
    event = peer.next_event()
    assert isinstance(event, Event) and event.subclass == "mod_audio_fork::json"


def test_a_socket_that_fails_to_close_still_wakes_every_waiter():
    class StubbornSocket(BrokenSocket):
        def sendall(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            raise OSError("already closed")

    conn = EslConnection(StubbornSocket(), reply_timeout=5)
    g = gevent.spawn(conn.command, "myevents")
    gevent.sleep(0)
    conn.close()
    with pytest.raises(CallGone):
        g.get(timeout=2)
    assert conn.events.get(timeout=1) == Closed("closed by agent")


def test_what_the_connection_drops_is_logged(peer, caplog):
    caplog.set_level("DEBUG", logger="agent.esl.connection")
    stray = "+OK " + "x" * 100
    peer.write(reply(stray) + b"Content-Type: log/data\nContent-Length: 3\n\nabc" + plain_event("DTMF"))
    peer.next_event()
    logged = [r.getMessage() for r in caplog.records if r.name == "agent.esl.connection"]
    assert logged == [f"ESL reply with no command waiting: {stray[:80]!r}", "ignoring ESL message of type 'log/data'"]
    caplog.clear()
    peer.write(b"no colon here\n\n")
    peer.next_event()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "agent.esl.connection"]
    assert line.startswith("ESL protocol error, dropping the connection: header line without ':'")
