"""The listen verb's wire and liveness edges: the fork command FreeSWITCH receives (metadata, token, URL), a stop
sent once and only after a confirmed start, and a fork lost by heartbeat or by audio progress at the exact limit."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from agent.call.actions.listen import ForkLiveness, ForkSettings, Listener, fork_token, secret_from_env

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


class FakeConn:
    """Records `api` lines and answers them as FreeSWITCH does (`+OK …` or `-ERR …`)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.sent: list[tuple[str, bool]] = []

    def api(self, line: str, check: bool = True) -> str:
        self.sent.append((line, check))
        return self.replies.pop(0) if self.replies else "+OK\n"


def _meta(line: str) -> dict:
    return json.loads(line.split(" ", 7)[7][1:-1])


def test_start_sends_the_fork_with_the_calls_metadata_and_token():
    conn = FakeConn("+OK Success\n")
    listener = Listener(conn, UUID, ForkSettings(url="ws://10.0.0.5:8090/", rate=16000, bug="callagent",
                                                 secret="s3cret"))
    reply = listener.start(industry="banking", tenant="하늘은행", hotwords=["적금", "이체"])
    assert reply == "+OK Success\n" and listener.started
    ((line, check),) = conn.sent
    assert check is False  # the reply is read here: +OK only means FreeSWITCH will try
    assert line.startswith(f"uuid_audio_fork {UUID} start ws://10.0.0.5:8090/{UUID} stereo 16k callagent '")
    assert _meta(line) == {"call_id": UUID, "rate": 16000, "industry": "banking", "tenant": "하늘은행",
                           "lang": "ko", "channels": 2, "hotwords": ["적금", "이체"],
                           "token": hmac.new(b"s3cret", UUID.encode(), hashlib.sha256).hexdigest()[:32]}


def test_a_mono_fork_without_secret_or_hotwords_sends_neither():
    conn = FakeConn()
    Listener(conn, UUID, ForkSettings(url="ws://w:1", rate=8000, bug="b", mix="mono")).start(
        industry="", tenant="t", hotwords=[], lang="en")
    line = conn.sent[0][0]
    assert f" start ws://w:1/{UUID} mono 8k b '" in line
    conn = FakeConn()
    Listener(conn, UUID, ForkSettings(url="ws://w:1/fork/X//", rate=8000, bug="b")).start(
        industry="", tenant="t", hotwords=[])
    assert f" start ws://w:1/fork/X/{UUID} " in conn.sent[0][0]  # only the trailing slashes go
    assert _meta(line) == {"call_id": UUID, "rate": 8000, "industry": "general", "tenant": "t", "lang": "en",
                           "channels": 1}


def test_stop_goes_out_once_and_only_after_a_confirmed_start():
    conn = FakeConn("-ERR no such channel\n")
    listener = Listener(conn, UUID, ForkSettings(url="ws://w", rate=16000, bug="callagent"))
    assert listener.stop() is False and conn.sent == []  # never started: nothing to remove
    listener.start(industry="x", tenant="", hotwords=[])
    assert not listener.started and listener.stop() is False and len(conn.sent) == 1

    conn = FakeConn("+OK\n", "+OK Success\n")
    listener = Listener(conn, UUID, ForkSettings(url="ws://w", rate=16000, bug="callagent"))
    listener.start(industry="x", tenant="", hotwords=[])
    assert listener.stop() is True and listener.stopped
    assert conn.sent[1] == (f"uuid_audio_fork {UUID} stop callagent", False)
    assert listener.stop() is False and len(conn.sent) == 2  # safe to call twice


def test_a_stop_freeswitch_refuses_is_reported():
    conn = FakeConn("+OK\n", "-ERR Cannot locate session!\n")
    listener = Listener(conn, UUID, ForkSettings(url="ws://w", rate=16000, bug="callagent"))
    listener.start(industry="x", tenant="", hotwords=[])
    assert listener.stop() is False and listener.stopped


def test_token_is_32_hex_characters_that_depend_on_the_secret():
    token = fork_token("c1", "k1")
    assert len(token) == 32 and token == hmac.new(b"k1", b"c1", hashlib.sha256).hexdigest()[:32]
    assert fork_token("c1", "k2") != token


def test_secret_from_env(monkeypatch):
    monkeypatch.setenv("CALLAGENT_FORK_SECRET_T", "abc")
    assert secret_from_env("CALLAGENT_FORK_SECRET_T") == "abc"
    assert secret_from_env("") == ""
    monkeypatch.delenv("CALLAGENT_FORK_SECRET_T")
    assert secret_from_env("CALLAGENT_FORK_SECRET_T") == ""


def test_default_liveness_limit_is_2_5_s_from_the_last_heartbeat():
    live = ForkLiveness()
    live.on_connect(10.0)
    live.on_heartbeat(11.0, 100.0)
    assert live.lost(13.5) is None
    assert live.lost(13.75) == "no heartbeat for 2.8 s"


def test_progress_is_measured_from_the_last_new_audio():
    live = ForkLiveness(timeout_s=2.0)
    live.on_connect(0.0)
    live.on_heartbeat(1.0, 500.0)   # progress at 1.0
    live.on_heartbeat(2.0, 500.0)   # same audio: no progress
    live.on_heartbeat(3.0, 400.0)   # less audio: no progress either
    assert live.last_audio_ms == 500.0
    assert live.lost(3.0) is None
    assert live.lost(3.5) == "no audio progress for 2.5 s"


def test_audio_from_zero_counts_as_progress():
    live = ForkLiveness(timeout_s=2.0)
    live.on_connect(0.0)
    live.on_heartbeat(1.5, 0.0)
    live.on_heartbeat(2.9, 0.0)
    assert live.lost(3.4) is None  # the first heartbeat's 0 ms is new audio: progress at 1.5


@pytest.mark.parametrize("beat_at, now, lost", [(5.0, 7.0, None), (5.0, 7.01, "no heartbeat for 2.0 s")])
def test_exactly_the_limit_is_still_alive(beat_at, now, lost):
    live = ForkLiveness(timeout_s=2.0)
    live.on_connect(0.0)
    live.on_heartbeat(beat_at, 1.0)
    assert live.lost(now) == lost


def test_progress_exactly_at_the_limit_is_alive():
    live = ForkLiveness(timeout_s=2.0)
    live.on_connect(0.0)
    live.on_heartbeat(1.0, 10.0)
    live.on_heartbeat(2.5, 10.0)
    assert live.lost(3.0) is None
    assert live.lost(3.25) == "no audio progress for 2.2 s"
