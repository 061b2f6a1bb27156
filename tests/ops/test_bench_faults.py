"""The fault suite: what it measures from a caller's timeline, the proxy that injects wire faults, and a quick
run on the real processes (a poison record, a killed worker)."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest

from agent.config import Config, StoreConfig
from agent.ops.bench import faults
from agent.ops.bench.faultkit import Proxy, longest_silence, silences
from agent.sim import CallLog, Heard, Transfer, Utterance


def _heard(t0: float, t1: float) -> Heard:
    return Heard(path="/x.wav", arg="/x.wav", headers={}, app_uuid="a", t_start=t0, t_stop=t1)


def _utt(last_voiced: float) -> Utterance:
    return Utterance(text="네", path=None, injected=True, duration_s=1.0, t_queued=last_voiced - 1,
                     t_first_voiced=last_voiced - 1, t_last_voiced=last_voiced, t_end=last_voiced)


def test_silence_is_measured_from_each_wait_for_the_agent():
    log = CallLog(uuid="u", answered_at=100.0, t_end=130.0)
    log.heard = [_heard(100.2, 103.0), _heard(106.2, 108.0)]
    log.utterances = [_utt(105.0), _utt(110.0)]  # the second one is never answered: transfer at 114.5
    log.transfer = Transfer(ext="human", dialplan="XML", context="ai_escalation", t=114.5, via="uuid_transfer")
    assert [(round(s - 100, 2), round(d, 2)) for s, d in silences(log)] == [(0.0, 0.2), (5.0, 1.2), (10.0, 4.5)]
    assert longest_silence(log) == pytest.approx(4.5)


def test_a_wait_starts_when_the_audio_playing_then_ends():
    log = CallLog(uuid="u", answered_at=100.0, t_end=130.0)
    log.heard = [_heard(100.0, 116.0), _heard(116.0, 118.0), _heard(121.0, 123.0)]
    log.utterances = [_utt(99.0), _utt(110.0)]  # spoke before the answer, and over the greeting
    assert [(round(s - 100, 2), round(d, 2)) for s, d in silences(log)] == [(0.0, 0.0), (18.0, 3.0), (18.0, 3.0)]


def test_an_unanswered_call_has_no_silence():
    assert silences(CallLog(uuid="u")) == []


def _echo(conn: socket.socket) -> None:
    try:
        while data := conn.recv(4096):
            conn.sendall(data)
    except OSError:
        pass  # reset by the proxy: that is the test


@pytest.fixture
def echo_port():
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_the_proxy_passes_freezes_thaws_and_resets(echo_port):
    proxy = Proxy(("127.0.0.1", echo_port))
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
            s.sendall(b"one")
            assert s.recv(16) == b"one"
            proxy.freeze()  # half-open: nothing passes, nothing closes
            s.sendall(b"two")
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.recv(16)
            s.settimeout(20)
            proxy.thaw()
            assert s.recv(16) == b"two"
            proxy.reset()
            with pytest.raises(ConnectionResetError):
                s.recv(16)
        proxy.set_mode("refuse")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s, \
                pytest.raises(ConnectionResetError):
            s.sendall(b"x")
            s.recv(16)
    finally:
        proxy.close()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng renders the caller's speech")
def test_quick_suite_on_the_real_processes(tmp_path, pg_server_dsn):
    cfg = Config(store=StoreConfig(dsn=pg_server_dsn), base_dir=str(tmp_path))
    result = faults.run(cfg, tmp_path / "work", quick=True, only=["poison_record", "worker_sigkill"])
    by_name = {r["scenario"]: r for r in result["scenarios"]}
    poison, killed = by_name["poison_record"], by_name["worker_sigkill"]
    assert "error" not in poison and "error" not in killed, result
    # A NUL byte in one call's variables costs nothing: every call is served and every record stored, closed.
    assert poison["placed"] == poison["served"] == poison["records_complete"] == 6
    assert poison["end_reasons"] == ["caller_hangup"]
    # A killed worker: every caller goes to a person, and every record says so.
    assert killed["transferred"] == killed["placed"] == killed["records_complete"] == 3
    assert killed["end_reasons"] == ["transferred"] and killed["transfer_after_fault_s"] is not None
    assert "| poison_record | 6 | 6 |" in faults.table_md(result)
