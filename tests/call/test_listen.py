"""Fork token, liveness and the fork command (pure parts of the listen verb)."""

import hashlib
import hmac
import json

import pytest

from agent.call.actions.listen import ForkLiveness, fork_token
from agent.esl import commands as cmd


def test_token_is_the_documented_hmac():
    expected = hmac.new(b"s3cret", b"abc-123", hashlib.sha256).hexdigest()[:32]
    assert fork_token("abc-123", "s3cret") == expected
    assert fork_token("abc-124", "s3cret") != expected


def test_a_fork_without_heartbeats_is_lost():
    live = ForkLiveness(timeout_s=2.5)
    assert live.lost(100.0) is None  # not connected yet: the connect timeout covers that
    live.on_connect(0.0)
    assert live.lost(2.5) is None
    assert "heartbeat" in live.lost(2.6)


def test_heartbeats_without_audio_progress_are_lost_too():
    live = ForkLiveness(timeout_s=2.0)
    live.on_connect(0.0)
    for t in range(1, 5):
        live.on_heartbeat(float(t), 1000.0)  # the worker is up but no audio arrives (half-open fork)
    assert "audio progress" in live.lost(4.0)


def test_steady_heartbeats_keep_the_fork_alive_and_zero_turns_it_off():
    live = ForkLiveness(timeout_s=2.0)
    live.on_connect(0.0)
    for t in range(1, 30):
        live.on_heartbeat(float(t), t * 1000.0)
        assert live.lost(t + 0.5) is None
    off = ForkLiveness(timeout_s=0)
    off.on_connect(0.0)
    assert off.lost(1e6) is None


@pytest.mark.parametrize("tenant", ["하늘쇼핑", "하늘 쇼핑", "O'Brien \"Co\" \\ 1", "🙂 tenant\nline"])
def test_fork_metadata_survives_any_unicode_value(tenant):
    line = cmd.uuid_audio_fork_start("u-1", "ws://127.0.0.1:8090/u-1", 16000, "callagent",
                                     {"tenant": tenant, "channels": 2}, mix="stereo")
    assert line.startswith("uuid_audio_fork u-1 start ws://127.0.0.1:8090/u-1 stereo 16k callagent '")
    meta = line.split(" ", 7)[7]
    assert meta[0] == meta[-1] == "'" and "'" not in meta[1:-1] and "\\" not in meta
    data = json.loads(meta[1:-1])
    assert data["channels"] == 2
    if tenant.isprintable() and "'" not in tenant and '"' not in tenant and "\\" not in tenant:
        assert data["tenant"] == tenant  # plain Unicode arrives exactly


def test_fileman_and_record_commands():
    assert cmd.uuid_fileman("u", "pause") == "uuid_fileman u pause"
    with pytest.raises(ValueError):
        cmd.uuid_fileman("u", "pause; uuid_kill u")
    assert cmd.uuid_record("u", "mask", "/var/rec/u.wav") == "uuid_record u mask /var/rec/u.wav"
    with pytest.raises(ValueError):
        cmd.uuid_record("u", "erase", "/x.wav")
