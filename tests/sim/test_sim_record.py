"""`uuid_record` on the simulated channel writes a real WAV (stereo on request, silence while masked) and
fires RECORD_START/STOP to sockets that asked for them; `uuid_audio_fork … stop_play` is not drachtio's."""

from __future__ import annotations

import time

import numpy as np
import soundfile as sf
from eslpeer import EslPeer, app_done, connect, events_until, named, run_call, write_tone

from agent.sim import CallScript

SPEED = 8.0


def _band_rms(x: np.ndarray, rate: int, freq: float) -> float:
    """RMS of the `freq` component (a single DFT bin of the whole signal)."""
    t = np.arange(len(x)) / rate
    return float(np.abs(np.sum(x * np.exp(-2j * np.pi * freq * t))) / len(x) * np.sqrt(2))


def test_stereo_recording_with_a_masked_stretch(tmp_path):
    caller_wav = write_tone(str(tmp_path / "caller.wav"), 6.0)          # 440 Hz: the caller
    rate = 8000
    t = np.arange(int(3.0 * rate)) / rate
    sf.write(str(tmp_path / "agent.wav"), (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate)
    out = str(tmp_path / "call.wav")
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        got["usage"] = peer.reply(f"api uuid_record {uuid} start").body
        assert peer.reply(f"api uuid_setvar {uuid} RECORD_STEREO true").body == b"+OK\n"
        got["unsubscribed"] = peer.reply(f"api uuid_record {uuid} start {tmp_path}/quiet.wav").body
        peer.reply(f"api uuid_record {uuid} stop {tmp_path}/quiet.wav")
        peer.reply("event plain RECORD_START RECORD_STOP")
        got["start"] = peer.reply(f"api uuid_record {uuid} start {out}").body
        got["start_event"] = peer.wait_event(named("RECORD_START")).event
        peer.reply(f"api uuid_broadcast {uuid} {tmp_path}/agent.wav aleg")
        time.sleep(0.5 / SPEED)
        got["mask"] = peer.reply(f"api uuid_record {uuid} mask {out}").body
        time.sleep(1.0 / SPEED)
        got["unmask"] = peer.reply(f"api uuid_record {uuid} unmask {out}").body
        events_until(peer, app_done("playback"), timeout=10)
        got["stop"] = peer.reply(f"api uuid_record {uuid} stop {out}").body
        got["stop_event"] = peer.wait_event(named("RECORD_STOP")).event
        got["again"] = peer.reply(f"api uuid_record {uuid} stop {out}").body
        got["nochannel"] = peer.reply(f"api uuid_record 0000-bad start {out}").body
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    log = run_call(agent, CallScript(steps=[{"say_audio": caller_wav}, {"sleep": 30}]), speed=SPEED)
    assert got["usage"].startswith(b"-USAGE: <uuid> [start|stop|mask|unmask] <path>")
    assert got["start"] == got["mask"] == got["unmask"] == got["stop"] == got["unsubscribed"] == b"+OK Success\n"
    assert got["again"] == b"-ERR Cannot stop record session!\n"
    assert got["nochannel"] == b"-ERR Cannot locate session!\n"
    assert got["start_event"]["Record-File-Path"] == out == got["stop_event"]["Record-File-Path"]
    assert got["stop_event"]["variable_record_ms"] == str(log.recordings[1].frames * 20)
    # myevents alone did not deliver the first recording's RECORD_* events.
    assert [e.headers["Record-File-Path"] for e in log.events_named("RECORD_START")] == [out]

    audio, file_rate = sf.read(out, dtype="float32", always_2d=True)
    rec = log.recordings[1]
    assert (audio.shape[1], file_rate, rec.channels) == (2, 8000, 2)
    [(f0, f1)] = rec.masked_frames
    m0, m1 = f0 * 160, f1 * 160
    assert m1 - m0 > 4000
    assert np.max(np.abs(audio[m0:m1])) == 0.0                    # silence while masked (PCI pause)
    assert np.max(np.abs(audio[m0 - 160:m0])) > 0 and np.max(np.abs(audio[m1:m1 + 160])) > 0
    before, after = audio[:m0], audio[m1:]
    assert _band_rms(before[:, 0], 8000, 440) > 0.05 and _band_rms(before[:, 1], 8000, 440) < 0.01
    assert _band_rms(before[:, 1], 8000, 1000) > 0.1              # the agent's audio on the right
    assert _band_rms(after[:, 1], 8000, 1000) > 0.1


def test_stop_play_is_not_a_drachtio_command(tmp_path):
    got: dict = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply(f"api uuid_audio_fork {uuid} start ws://127.0.0.1:9/x mono 8k")
        got["stop_play"] = peer.reply(f"api uuid_audio_fork {uuid} stop_play").body
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    run_call(agent, speed=SPEED)
    assert got["stop_play"] == b"-ERR Operation Failed\n"
