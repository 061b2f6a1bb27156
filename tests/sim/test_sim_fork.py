"""The simulated mod_audio_fork against a tiny in-test WebSocket server (freeswitch.md §3, §9)."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from eslpeer import EslPeer, connect, named, needs_espeak, run_call, write_tone
from websockets.asyncio.server import ServerConnection
from wsserver import WsServer, collect

from agent.sim import CallScript

SPEED = 8.0
SUBSCRIBE = ("event plain PLAYBACK_START PLAYBACK_STOP CUSTOM mod_audio_fork::connect "
             "mod_audio_fork::connect_failed mod_audio_fork::disconnect mod_audio_fork::transcription "
             "mod_audio_fork::json "
             "mod_audio_fork::play_audio mod_audio_fork::kill_audio")


def _fork(peer: EslPeer, args: str) -> bytes:
    return peer.reply(f"api uuid_audio_fork {args}").body


@needs_espeak
def test_fork_handshake_metadata_first_640_byte_frames_and_raw_json_bodies():
    async def handler(ws: ServerConnection, record: dict) -> None:
        async for msg in ws:
            if isinstance(msg, bytes):
                record["sizes"].append(len(msg))
                continue
            record["texts"].append(msg)
            if "callagent.inject" in msg:
                text = json.loads(msg)["text"]
                await ws.send(json.dumps({"type": "transcription", "data": {"text": text, "final": True}}))
                await ws.send('{"type": "json", "event": "turn", "n": 2.0}')

    server = WsServer(handler)
    got = {}
    metadata = '{"call_id": "X", "industry": "이커머스", "rate": 16000}'

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        peer.reply(SUBSCRIBE)
        peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: answer")
        got["uuid"] = uuid
        got["start"] = _fork(peer, f"{uuid} start {server.url(uuid)} mono 16k callagent '{metadata}'")
        got["connect"] = peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::connect"))
        got["transcription"] = peer.wait_event(
            named("CUSTOM", Event_Subclass="mod_audio_fork::transcription"), timeout=10)
        got["json"] = peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::json"))
        peer.read_until_closed()             # the caller hangs up when the script ends

    try:
        script = CallScript(steps=[{"sleep": 2}, {"say_text": "주문 조회하고 싶어요"}])
        log = run_call(agent, script, speed=SPEED)
        assert server.record["closed"].wait(5)
    finally:
        server.close()
    record = server.record
    assert got["start"] == b"+OK Success\n"
    assert record["subprotocol"] == "audio.drachtio.org"
    req = record["request"]
    assert req.path == f"/{got['uuid']}"
    assert (req.headers["Origin"], req.headers["Host"]) == ("http://127.0.0.1", "127.0.0.1")
    assert record["texts"][0] == metadata                   # quotes stripped, spaces and UTF-8 kept
    assert json.loads(record["texts"][1]) == {"type": "callagent.inject", "text": "주문 조회하고 싶어요"}
    # One 20 ms packet per frame; lws coalesces whatever queued up if a write was late (§3.2).
    assert all(size % 640 == 0 for size in record["sizes"])
    assert record["sizes"].count(640) >= 0.9 * len(record["sizes"])
    assert record["close_code"] == 1000 and record["texts"][2:] == []   # hangup closes without text
    connect_event = got["connect"]
    assert connect_event.event_body is None and connect_event.event["Unique-ID"] == got["uuid"]
    body = '{"text":"주문 조회하고 싶어요","final":true}'
    tr = got["transcription"]
    assert tr.event_body == body
    assert tr.body.endswith(f"Content-Length: {len(body.encode())}\n\n".encode() + body.encode())
    assert got["json"].event_body == '{"type":"json","event":"turn","n":2}'
    [utt] = log.utterances
    assert utt.injected and utt.t_first_voiced < utt.t_last_voiced < utt.t_end
    # espeak's voiced span, streamed at 8x: first to last voiced packet ≈ that span / speed.
    assert 0.5 / SPEED < utt.t_last_voiced - utt.t_first_voiced < utt.duration_s / SPEED + 0.05
    assert log.ended_by == "caller"
    assert log.fork.frames_sent == len(record["sizes"]) and log.fork.frames_late <= log.fork.frames_sent // 10


def test_fork_caret_form_8k_frames_and_merged_packets():
    server = WsServer(collect)

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: answer")
        assert _fork(peer, f'^^|{uuid}|start|{server.url(uuid)}|mono|8k|bug2|{{"a": 1}}') == b"+OK Success\n"
        time.sleep(2.5 / SPEED)
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    try:
        log = run_call(agent, speed=SPEED, merge_frames=True)
        assert server.record["closed"].wait(5)
    finally:
        server.close()
    assert server.record["texts"] == ['{"a": 1}']
    sizes = server.record["sizes"]
    # Whole 20 ms packets only; merged frames occur, single packets dominate. (A loaded machine may let a third
    # packet accumulate before the write, as lws would: freeswitch.md §3.2 "sometimes several".)
    assert all(size % 320 == 0 for size in sizes) and 640 in sizes
    assert sizes.count(320) > len(sizes) // 2
    assert (log.fork.bugname, log.fork.rate, log.fork.packets_sent) == ("bug2", 8000, sum(sizes) // 320)


def test_fork_argument_rules_and_connect_failed_still_answers_success():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{s.getsockname()[1]}/x"
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        peer.reply(SUBSCRIBE)
        got["start"] = _fork(peer, f"{uuid} start {dead} mono 16k {{\"a\": 1, \"b\": 2}}")
        got["failed"] = peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::connect_failed"))
        got["dup"] = _fork(peer, f"{uuid} start {dead} mono 16k {{\"a\": 1, \"b\": 2}}")
        got["bad_mix"] = _fork(peer, f"{uuid} start {dead} quad 16k other")
        got["stop_unknown"] = _fork(peer, f"{uuid} stop nobug")
        got["no_channel"] = _fork(peer, f"0000-bad start {dead} mono 16k")
        got["usage"] = _fork(peer, f"{uuid} start")
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    log = run_call(agent, speed=SPEED)
    assert got["start"] == b"+OK Success\n"
    assert got["failed"].event_body == '{"reason":"Unable to connect"}'
    assert got["dup"] == b"-ERR Operation Failed\n"            # the failed bug stays attached (§9)
    assert got["bad_mix"] == b"-ERR no reply\n"
    assert got["stop_unknown"] == got["no_channel"] == b"-ERR Operation Failed\n"
    assert got["usage"].startswith(b"-USAGE: <uuid> [start | stop")
    [fork] = log.forks
    assert (fork.bugname, fork.metadata, fork.connected) == ('{"a":', '1, "b": 2}', False)
    assert fork.connect_failed == "Unable to connect"


def test_far_end_close_fires_disconnect_and_stop_sends_final_text_then_1000():
    async def close_after_metadata(ws: ServerConnection, record: dict) -> None:
        record["texts"].append(await ws.recv())
        await ws.close(1011, "bye")

    closing = WsServer(close_after_metadata)
    listening = WsServer(collect)
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        peer.reply(SUBSCRIBE)
        _fork(peer, f"{uuid} start {closing.url(uuid)} mono 16k a {{}}")
        got["disconnect"] = peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::disconnect"))
        peer.events.clear()        # fork events carry no bugname: drop bug a's ::connect
        _fork(peer, f"{uuid} start {listening.url(uuid)} mono 16k b {{}}")
        peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::connect"))
        got["send_text"] = _fork(peer, f'{uuid} send_text b {{"type":"mark"}}')
        got["stop"] = _fork(peer, f'{uuid} stop b {{"final":true}}')
        assert listening.record["closed"].wait(5)
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    try:
        log = run_call(agent, speed=SPEED)
    finally:
        closing.close()
        listening.close()
    assert got["disconnect"].event_body is None
    assert got["send_text"] == got["stop"] == b"+OK Success\n"
    assert listening.record["texts"] == ["{}", '{"type":"mark"}', '{"final":true}']
    assert listening.record["close_code"] == 1000
    assert [(f.bugname, f.closed_by, f.close_code) for f in log.forks] == [
        ("a", "server", 1011), ("b", "sim", 1000)]


def _wav_b64(seconds: float, rate: int = 8000) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * rate), dtype=np.float32), rate, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


def test_play_audio_writes_a_temp_file_and_kill_audio_breaks_the_playback(tmp_path):
    long_wav = write_tone(str(tmp_path / "long.wav"), 4.0)

    async def handler(ws: ServerConnection, record: dict) -> None:
        async for msg in ws:
            if isinstance(msg, str) and msg == "{}":
                await ws.send(json.dumps({"type": "playAudio", "data": {
                    "audioContentType": "wave", "audioContent": _wav_b64(0.5), "textContent": "네"}}))
            elif isinstance(msg, str) and msg == '{"kill":1}':
                await ws.send('{"type":"killAudio"}')

    server = WsServer(handler)
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("myevents")
        peer.reply(SUBSCRIBE)
        _fork(peer, f"{uuid} start {server.url(uuid)} mono 16k {{}}")
        got["play_audio"] = peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::play_audio"))
        got["exists"] = Path(json.loads(got["play_audio"].event_body)["file"]).stat().st_size
        peer.reply(f"api uuid_broadcast {uuid} {long_wav}")
        peer.wait_event(named("PLAYBACK_START"))
        _fork(peer, f'{uuid} send_text {{"kill":1}}')
        got["kill"] = peer.wait_event(named("CUSTOM", Event_Subclass="mod_audio_fork::kill_audio"))
        got["stop"] = peer.wait_event(named("PLAYBACK_STOP"))
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    try:
        log = run_call(agent, speed=SPEED, temp_dir=tmp_path / "fs")
    finally:
        server.close()
    body = json.loads(got["play_audio"].event_body)
    assert body["audioContentType"] == "wave" and body["textContent"] == "네" and "audioContent" not in body
    assert Path(body["file"]).name == f"{log.uuid}_0.tmp.wav" and got["exists"] > 44
    assert not Path(body["file"]).exists()                     # deleted when the bug is cleaned up
    assert got["kill"].event_body is None
    assert got["stop"].event["Playback-Status"] == "break"
