"""Playback on the simulated channel: event order, uuid_break vs break all, event-lock, subscriptions
(freeswitch.md §1.5, §1.6, §4, §9), driven by a raw-socket test agent."""

from __future__ import annotations

import time

import pytest
from eslpeer import EslPeer, app_done, connect, events_until, named, run_call, subscribe, write_tone

SPEED = 8.0


def test_sendmsg_playback_event_order_echoes_application_uuid(tmp_path):
    wav = write_tone(str(tmp_path / "t.wav"), 0.8)
    got = {}

    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer)
        assert peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: answer\nEvent-UUID: a-1"
                          ).headers["Reply-Text"] == "+OK"
        peer.reply(f"sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
                   f"execute-app-arg: {{utt_id=7,chunk=0}}{wav}\nevent-lock: true\nEvent-UUID: p-7")
        got["play"] = events_until(peer, app_done("playback"))
        peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
                   f"execute-app-arg: {tmp_path}/no.wav")
        got["missing"] = events_until(peer, app_done("playback"))
        peer.reply("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING")
        peer.read_until_closed()

    log = run_call(agent, speed=SPEED)
    names = [(e["Event-Name"], e.get("Application")) for e in got["play"]]
    assert names == [("CHANNEL_EXECUTE", "answer"), ("CHANNEL_ANSWER", None),
                     ("CHANNEL_EXECUTE_COMPLETE", "answer"), ("CHANNEL_EXECUTE", "playback"),
                     ("PLAYBACK_START", None), ("PLAYBACK_STOP", None),
                     ("CHANNEL_EXECUTE_COMPLETE", "playback")]
    ex, _, _, ex_play, start, stop, done = got["play"]
    assert ex["Application-UUID"] == "a-1"
    assert ex_play["Application-UUID"] == done["Application-UUID"] == "p-7"
    assert start["Playback-File-Path"] == f"{{utt_id=7,chunk=0}}{wav}"
    assert (start["utt_id"], start["chunk"], stop["utt_id"], stop["chunk"]) == ("7", "0", "7", "0")
    assert start["variable_ai_did"] == "15881234" and start["Unique-ID"] == log.uuid
    assert stop["Playback-Status"] == "done" and stop["variable_playback_ms"] == "800"
    assert done["Application-Response"] == "FILE PLAYED" and done["variable_playback_ms"] == "800"
    assert [e["Event-Name"] for e in got["missing"]] == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]
    assert got["missing"][-1]["Application-Response"] == "FILE NOT FOUND"
    seqs = [int(e["Event-Sequence"]) for e in got["play"] + got["missing"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    [heard] = log.heard
    assert heard.headers == {"utt_id": "7", "chunk": "0"} and heard.ms == 800 and heard.status == "done"
    assert heard.t_stop - heard.t_start == pytest.approx(0.8 / SPEED, abs=0.05)
    assert log.ended_by == "agent_hangup" and log.hangup_cause == "NORMAL_CLEARING"


def test_uuid_break_starts_the_next_item_and_break_all_flushes_the_queue(tmp_path):
    long_wav = write_tone(str(tmp_path / "long.wav"), 4.0)
    short_wav = write_tone(str(tmp_path / "short.wav"), 0.4)
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer)
        for i, wav in enumerate((long_wav, long_wav, short_wav)):
            reply = peer.reply(f"api uuid_broadcast {uuid} {{utt_id={i}}}{wav} aleg")
            assert reply.body == b"+OK Message sent\n"
        peer.wait_event(named("PLAYBACK_START", {"utt_id": "0"}))
        peer.events.clear()
        got["break"] = peer.reply(f"api uuid_break {uuid}").body
        got["first"] = events_until(peer, lambda e: e["Event-Name"] == "PLAYBACK_START")
        got["break_all"] = peer.reply(f"api uuid_break {uuid} all").body
        got["second"] = events_until(peer, app_done("playback"))
        time.sleep(1.0 / SPEED)        # long enough for item 2 to have started, were it still queued
        peer.reply("sendmsg\ncall-command: hangup")
        got["rest"] = [m.event for m in peer.read_until_closed() if m.event]

    log = run_call(agent, speed=SPEED)
    assert got["break"] == got["break_all"] == b"+OK\n"
    assert [(e["Event-Name"], e.get("utt_id"), e.get("Playback-Status"), e.get("Application-Response"))
            for e in got["first"]] == [("PLAYBACK_STOP", "0", "break", None),
                                       ("CHANNEL_EXECUTE_COMPLETE", None, None, "FILE PLAYED"),
                                       ("CHANNEL_EXECUTE", None, None, None),
                                       ("PLAYBACK_START", "1", None, None)]
    stop1 = next(e for e in got["second"] if e["Event-Name"] == "PLAYBACK_STOP")
    assert (stop1["Playback-Status"], stop1["utt_id"]) == ("break", "1")
    assert not any(e.get("utt_id") == "2" for e in got["rest"])
    assert [(h.headers["utt_id"], h.status) for h in log.heard] == [("0", "break"), ("1", "break")]
    assert 0 <= log.heard[0].ms < 4000    # frames are 20 ms: a break right after START may play none


def test_myevents_alone_hides_playback_events_until_event_plain(tmp_path):
    wav = write_tone(str(tmp_path / "t.wav"), 0.3)
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer, extra="")
        peer.reply(f"api uuid_broadcast {uuid} {wav}")
        got["myevents"] = events_until(peer, app_done("playback"))
        peer.reply("event plain PLAYBACK_START")
        peer.reply(f"api uuid_broadcast {uuid} {wav}")
        got["start_only"] = events_until(peer, app_done("playback"))
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    run_call(agent, speed=SPEED)
    assert [e["Event-Name"] for e in got["myevents"]] == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]
    assert [e["Event-Name"] for e in got["start_only"]] == [
        "CHANNEL_EXECUTE", "PLAYBACK_START", "CHANNEL_EXECUTE_COMPLETE"]


def test_event_plain_without_myevents_sees_other_channels_and_filters_narrow_it(tmp_path):
    wav = write_tone(str(tmp_path / "t.wav"), 0.2)
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        peer.reply("event plain CHANNEL_EXECUTE_COMPLETE")
        peer.reply(f"filter Unique-ID {uuid}")
        peer.reply(f"api uuid_broadcast {uuid} {wav}")
        got["own"] = peer.wait_event(named("CHANNEL_EXECUTE_COMPLETE", Application="playback"))
        peer.reply("filter delete all")
        peer.reply(f"api uuid_broadcast {uuid} {{n=2}}{wav}")
        got["again"] = peer.wait_event(named("CHANNEL_EXECUTE_COMPLETE", Application="playback"))
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    run_call(agent, speed=SPEED)
    assert got["own"].event["Application-Data"].endswith("t.wav")
    assert got["again"].event["Application-Data"].startswith("{n=2}")


def test_unlocked_second_playback_nests_and_event_lock_serializes(tmp_path):
    long_wav = write_tone(str(tmp_path / "long.wav"), 1.6)
    short_wav = write_tone(str(tmp_path / "short.wav"), 0.4)

    def play(peer: EslPeer, arg: str, lock: bool) -> None:
        lock_line = "\nevent-lock: true" if lock else ""
        peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
                   f"execute-app-arg: {arg}{lock_line}")

    def scenario(lock: bool) -> list[tuple[str, str]]:
        got: list[dict[str, str]] = []

        def agent(peer: EslPeer) -> None:
            connect(peer)
            subscribe(peer)
            play(peer, f"{{n=a}}{long_wav}", lock)
            got.append(peer.wait_event(named("PLAYBACK_START", n="a")).event)
            play(peer, f"{{n=b}}{short_wav}", lock)
            completed: set[str] = set()

            def both_done(e: dict[str, str]) -> bool:
                if app_done("playback")(e):
                    completed.add(e["Application-Data"][:5])
                return completed == {"{n=a}", "{n=b}"}

            got.extend(events_until(peer, both_done))
            peer.reply("sendmsg\ncall-command: hangup")
            peer.read_until_closed()

        run_call(agent, speed=SPEED)
        return [(e["Event-Name"], e["n"]) for e in got if e["Event-Name"].startswith("PLAYBACK")]

    # Without event-lock the second playback runs inside the first (which pauses, then finishes).
    assert scenario(lock=False) == [("PLAYBACK_START", "a"), ("PLAYBACK_START", "b"), ("PLAYBACK_STOP", "b"),
                                    ("PLAYBACK_STOP", "a")]
    assert scenario(lock=True) == [("PLAYBACK_START", "a"), ("PLAYBACK_STOP", "a"), ("PLAYBACK_START", "b"),
                                   ("PLAYBACK_STOP", "b")]
