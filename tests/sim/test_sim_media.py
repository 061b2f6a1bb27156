"""Media on the simulated channel as FreeSWITCH does it: files user `freeswitch` cannot open, `uuid_fileman`
pause, stereo forks with what the caller hears on the right, line echo, codecs, in-band DTMF
(freeswitch.md §1.6, §1.8, §3.2, §4, §10)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import soundfile as sf
from eslpeer import EslPeer, app_done, connect, events_until, named, run_call, subscribe, write_tone
from wsserver import WsServer, collect

from agent.sim import CallScript
from agent.sim.scenario import Echo

SPEED = 8.0
FORK_EVENTS = "event plain CUSTOM mod_audio_fork::connect"


def _play(peer: EslPeer, path: str, lock: bool = True) -> list[dict[str, str]]:
    peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
               f"execute-app-arg: {path}" + ("\nevent-lock: true" if lock else ""))
    return events_until(peer, app_done("playback"))


def _names(events: list[dict[str, str]]) -> list[str]:
    return [e["Event-Name"] for e in events]


def test_a_file_freeswitch_cannot_read_is_file_not_found_with_no_playback_events(tmp_path):
    private = write_tone(str(tmp_path / "private.wav"), 0.2)
    os.chmod(private, 0o600)            # this process can read it; user freeswitch cannot
    group = write_tone(str(tmp_path / "group.wav"), 0.2)
    os.chmod(group, 0o640)
    public = write_tone(str(tmp_path / "public.wav"), 0.2)
    os.chmod(public, 0o644)
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer)
        got["private"] = _play(peer, private)
        got["missing"] = _play(peer, str(tmp_path / "nope.wav"), lock=False)
        assert peer.reply(f"api uuid_broadcast {uuid} {private} aleg").body == b"+OK Message sent\n"
        got["broadcast"] = events_until(peer, app_done("playback"))
        got["group"] = _play(peer, group)
        got["public"] = _play(peer, public)
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    gid = os.stat(group).st_gid
    log = run_call(agent, speed=SPEED, fs_gids={gid + 1})      # freeswitch is not in the file's group
    for key in ("private", "missing", "broadcast", "group"):
        assert _names(got[key]) == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"], key
        assert got[key][-1]["Application-Response"] == "FILE NOT FOUND", key
    assert _names(got["public"]) == ["CHANNEL_EXECUTE", "PLAYBACK_START", "PLAYBACK_STOP",
                                     "CHANNEL_EXECUTE_COMPLETE"]
    assert got["public"][-1]["Application-Response"] == "FILE PLAYED"
    assert [h.path for h in log.heard] == [public]
    assert any("not readable by user freeswitch" in n for n in log.notes)

    got.clear()
    log = run_call(agent, speed=SPEED, fs_gids={gid})          # now it is: the group-readable file plays
    assert _names(got["group"])[1:3] == ["PLAYBACK_START", "PLAYBACK_STOP"]
    assert [h.path for h in log.heard] == [group, public]


def test_fileman_pause_toggles_the_playing_file_and_the_caller_hears_the_gap(tmp_path):
    speed = 4.0
    wav = write_tone(str(tmp_path / "reply.wav"), 3.0)
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer)
        got["idle"] = peer.reply(f"api uuid_fileman {uuid} pause").body
        peer.reply(f"api uuid_broadcast {uuid} {{utt_id=3}}{wav} aleg")
        peer.wait_event(named("PLAYBACK_START"))
        time.sleep(0.3 / speed)
        got["pause"] = peer.reply(f"api uuid_fileman {uuid} pause").body
        time.sleep(0.6 / speed)
        got["resume"] = peer.reply(f"api uuid_fileman {uuid} pause").body
        got["volume"] = peer.reply(f"api uuid_fileman {uuid} volume:-2").body
        got["stop"] = peer.wait_event(named("PLAYBACK_STOP"), timeout=10).event
        got["usage"] = peer.reply("api uuid_fileman").body
        got["nochannel"] = peer.reply("api uuid_fileman 0000-bad pause").body
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    log = run_call(agent, speed=speed)
    assert got["idle"] == b"-ERR No file handle!\n"
    assert got["pause"] == got["resume"] == got["volume"] == b"+OK\n"
    assert got["usage"] == b"-USAGE: <uuid> <cmd>:<val>\n" and got["nochannel"] == b"-ERR No such channel!\n"
    assert got["stop"]["Playback-Status"] == "done" and got["stop"]["variable_playback_ms"] == "3000"
    [heard] = log.heard
    assert [c for _, c in heard.fileman] == ["pause", "pause", "volume:-2"]
    first, second = heard.segments
    # Resumed where it stopped: the file position did not move while paused.
    assert first.from_ms == 0 and second.from_ms == first.to_ms and second.to_ms == 3000
    assert 0 < first.to_ms < 3000
    [gap] = heard.gaps()
    assert gap >= 0.6 / speed * 0.8          # at least the time the agent held the pause
    assert heard.t_stop - heard.t_start > gap


def _stereo_call(tmp_path, echo: Echo | None, mix: str = "stereo") -> tuple[np.ndarray, int]:
    """A fork at 8 kHz while the agent plays a 0.5 s tone to a silent caller; returns the fork audio."""
    ws = WsServer(collect)
    wav = write_tone(str(tmp_path / "agent.wav"), 0.5, lead_s=0.1, tail_s=0.1)

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer, extra="PLAYBACK_START PLAYBACK_STOP CUSTOM mod_audio_fork::connect")
        assert peer.reply(f"api uuid_audio_fork {uuid} start {ws.url(uuid)} {mix} 8k").body == b"+OK Success\n"
        peer.wait_event(named("CUSTOM", {"Event-Subclass": "mod_audio_fork::connect"}))
        _play(peer, wav)
        time.sleep(0.4 / SPEED)            # the echo tail reaches the fork
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    try:
        run_call(agent, CallScript(steps=[{"sleep": 30}], echo=echo), speed=SPEED)
        assert ws.record["closed"].wait(5)
    finally:
        ws.close()
    data = b"".join(chunk for _, chunk in ws.record["audio"])
    return np.frombuffer(data, dtype="<i2"), len(ws.record["sizes"])


def test_stereo_fork_carries_the_caller_left_and_what_the_caller_hears_right(tmp_path):
    pcm, _ = _stereo_call(tmp_path, echo=None)
    left, right = pcm[0::2].astype(float), pcm[1::2].astype(float)
    assert np.sqrt(np.mean(right ** 2)) > 1000        # the agent's tone
    assert np.max(np.abs(left)) < 50                   # a silent caller, no echo
    mono, _ = _stereo_call(tmp_path, echo=None, mix="mono")
    assert np.max(np.abs(mono.astype(float))) < 50     # mono never carries the agent's own audio


@pytest.mark.parametrize(("delay_ms", "gain_db"), [(40, -6.0), (200, -24.0)])
def test_echo_returns_what_the_caller_hears_delayed_and_quieter(tmp_path, delay_ms, gain_db):
    pcm, _ = _stereo_call(tmp_path, echo=Echo(delay_ms=delay_ms, gain_db=gain_db))
    left, right = pcm[0::2].astype(float), pcm[1::2].astype(float)
    lag = int(np.argmax(np.correlate(left, right[:len(right) - 4000], mode="valid")))
    assert abs(lag - delay_ms * 8) <= 2
    ratio_db = 20 * np.log10(np.sqrt(np.mean(left ** 2)) / np.sqrt(np.mean(right ** 2)))
    assert ratio_db == pytest.approx(gain_db, abs=1.5)


def test_echo_settings_are_validated():
    with pytest.raises(ValueError):
        Echo(delay_ms=10)
    with pytest.raises(ValueError):
        CallScript(echo={"delay_ms": 100, "gain_db": -40})


def _caller_with_6k_tone(tmp_path, codec: str) -> tuple[dict[str, str], np.ndarray]:
    rate = 16000
    t = np.arange(int(0.6 * rate)) / rate
    sf.write(str(tmp_path / "hi.wav"), (0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32), rate)
    ws = WsServer(collect)
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        peer.send("connect\n\n")
        got["connect"] = {k: v for k, v in peer.read_message().headers.items()}
        uuid = got["connect"]["Unique-ID"]
        peer.reply("myevents")
        peer.reply(FORK_EVENTS)
        peer.reply(f"api uuid_audio_fork {uuid} start {ws.url(uuid)} mono 16k")
        peer.wait_event(named("CUSTOM", {"Event-Subclass": "mod_audio_fork::connect"}))
        peer.read_until_closed(timeout=10)

    try:
        run_call(agent, CallScript(codec=codec, steps=[{"sleep": 0.3}, {"say_audio": str(tmp_path / "hi.wav")}]),
                 speed=SPEED)
        assert ws.record["closed"].wait(5)
    finally:
        ws.close()
    return got["connect"], np.frombuffer(b"".join(c for _, c in ws.record["audio"]), dtype="<i2")


@pytest.mark.parametrize(("codec", "rate", "wideband"), [("PCMU", "8000", False), ("PCMA", "8000", False),
                                                         ("G722", "16000", True)])
def test_the_callers_codec_is_reported_and_shapes_the_fork_audio(tmp_path, codec, rate, wideband):
    headers, pcm = _caller_with_6k_tone(tmp_path, codec)
    assert (headers["Channel-Read-Codec-Name"], headers["Channel-Read-Codec-Rate"]) == (codec, rate)
    assert headers["variable_read_rate"] == rate
    level = np.sqrt(np.mean(pcm.astype(float) ** 2))
    # A 6 kHz voice component survives a 16 kHz G.722 leg and is cut by an 8 kHz G.711 one.
    assert (level > 1000) == wideband


def test_inband_dtmf_is_reported_only_after_start_dtmf(tmp_path):
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        peer.wait_event(named("DTMF", {"DTMF-Digit": "9"}), timeout=10)
        peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: start_dtmf")
        events_until(peer, app_done("start_dtmf"))
        peer.reply(f"api uuid_broadcast {uuid} silence_stream://400 aleg")
        got["dtmf"] = [peer.wait_event(named("DTMF"), timeout=10).event for _ in range(3)]
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    script = CallScript(steps=[{"dtmf": {"digits": "5", "inband": True}}, {"dtmf": "9"}, "wait_playback",
                               {"dtmf": {"digits": "12#", "inband": True}}])
    log = run_call(agent, script, speed=SPEED)
    assert [(e["DTMF-Digit"], e["DTMF-Source"]) for e in got["dtmf"]] == [
        ("1", "INBAND_AUDIO"), ("2", "INBAND_AUDIO"), ("#", "INBAND_AUDIO")]
    assert [d for _, d in log.dtmf] == ["9", "1", "2", "#"]       # the tones before start_dtmf went unseen
