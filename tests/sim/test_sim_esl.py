"""The simulated outbound socket, driven by a raw-socket test agent (freeswitch.md §1.3–§1.8, §4, §9)."""

from __future__ import annotations

import asyncio
import socket
import time

from eslpeer import EslPeer, connect, events_until, named, run_call, subscribe, write_tone

from agent.sim import CallScript, FreeSwitchSim

SPEED = 8.0


def test_connect_reply_is_one_url_encoded_block_without_content_length():
    seen = {}

    def agent(peer: EslPeer) -> None:
        peer.send("connect\n\n")
        while b"\n\n" not in peer._buf:
            peer._fill(time.monotonic() + 5)
        seen["block"], _, rest = peer._buf.partition(b"\n\n")
        peer._buf = rest
        seen["next"] = peer.reply("myevents").headers
        peer.reply("exit")

    log = run_call(agent, CallScript(variables={"callagent_industry": "ecommerce"}, steps=[{"sleep": 60}]),
                   speed=SPEED)
    block = seen["block"].decode()
    lines = block.split("\n")
    assert lines[0] == "Event-Name: CHANNEL_DATA"
    assert not any(line.startswith("Content-Length") for line in lines)
    assert lines[-4:] == ["Content-Type: command/reply", "Reply-Text: %2BOK%0A", "Socket-Mode: async",
                          "Control: full"]
    assert f"Unique-ID: {log.uuid}" in lines and f"Channel-Unique-ID: {log.uuid}" in lines
    for line in ("Caller-Caller-ID-Number: 01012345678", "Caller-Destination-Number: 15881234",
                 "Caller-Context: public", "Channel-Read-Codec-Name: PCMU", "Channel-Read-Codec-Rate: 8000",
                 "Answer-State: early", "variable_callagent_industry: ecommerce",
                 "variable_current_application: socket"):
        assert line in lines
    assert seen["next"] == {"Content-Type": "command/reply", "Reply-Text": "+OK Events Enabled"}


def test_without_full_control_gated_commands_are_not_found():
    replies = {}

    def agent(peer: EslPeer) -> None:
        peer.send("connect\n\n")
        replies["control"] = peer.read_message().headers["Control"]
        for cmd in ("api uuid_exists x", "event plain ALL", "linger", "nolinger", "nixevent DTMF", "noevents",
                    "log info", "bgapi status", "myevents", "getvar ai_did", "filter Event-Name DTMF"):
            replies[cmd] = peer.reply(cmd).headers["Reply-Text"]
        replies["sendmsg"] = peer.reply("sendmsg\ncall-command: execute\nexecute-app-name: answer").headers
        peer.reply("exit")

    run_call(agent, full=False, speed=SPEED)
    assert replies.pop("control") == "single-channel"
    assert replies.pop("myevents") == "+OK Events Enabled"
    assert replies.pop("getvar ai_did") == "15881234"
    assert replies.pop("filter Event-Name DTMF") == "+OK filter added. [Event-Name]=[DTMF]"
    assert replies.pop("sendmsg")["Reply-Text"] == "+OK"
    assert set(replies.values()) == {"-ERR command not found"}


def test_exact_reply_texts_and_exit_falls_through_to_the_dialplan():
    got: dict[str, str] = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        cmds = ["myevents", "myevents", "event plain PLAYBACK_START CUSTOM mod_audio_fork::json",
                "event plain",
                "linger 5", "nolinger", "linger", "filter Unique-ID abc", "filter delete Unique-ID abc",
                "filter delete all", "getvar callagent_industry", "getvar nope", "resume", "nixevent DTMF",
                "noevents", "noevents", "divert_events on", "log", "bogus command", "sendmsg 0000-bad"]
        for cmd in cmds:
            got[cmd] = peer.reply(cmd).headers["Reply-Text"]
        for api in (f"uuid_getvar {uuid} nope", f"uuid_getvar {uuid} callagent_industry",
                    f"uuid_setvar {uuid} ai_summary 주문 조회 문의", f"uuid_getvar {uuid} ai_summary",
                    "uuid_break 0000-bad", "uuid_broadcast 0000-bad /x.wav", f"uuid_exists {uuid}",
                    "uuid_exists 0000-bad", "nosuch_cmd x", "uuid_transfer 0000-bad human", "uuid_broadcast",
                    f"uuid_setvar_multi {uuid} a=1;b=2", f"uuid_getvar {uuid} b", f"uuid_answer {uuid}"):
            msg = peer.reply("api " + api)
            assert int(msg.headers["Content-Length"]) == len(msg.body)
            got[api.replace(uuid, "U")] = msg.body.decode()
        bye = peer.reply("exit")
        got["exit"] = bye.headers["Reply-Text"]
        notice = peer.read_message()
        got["notice"] = notice.raw.decode().replace(uuid, "U")
        got["closed"] = str(peer.read_until_closed() == [])

    log = run_call(agent, CallScript(variables={"callagent_industry": "ecommerce"}, steps=[{"sleep": 60}]),
                   speed=SPEED)
    assert got == {
        "myevents": "-ERR aready enabled.",
        "event plain PLAYBACK_START CUSTOM mod_audio_fork::json": "+OK event listener enabled plain",
        "event plain": "-ERR no keywords supplied",
        "linger 5": "+OK will linger 5 seconds",
        "nolinger": "+OK will not linger",
        "linger": "+OK will linger",
        "filter Unique-ID abc": "+OK filter added. [Unique-ID]=[abc]",
        "filter delete Unique-ID abc": "+OK filter deleted. [Unique-ID][abc]",
        "filter delete all": "+OK filter deleted. [all][]",
        "getvar callagent_industry": "ecommerce",
        "getvar nope": "-ERR command not found",      # an empty getvar reply is "not found" in parse_command
        "resume": "+OK",
        "nixevent DTMF": "+OK events nixed",
        "noevents": "-ERR not listening for events",
        "divert_events on": "+OK events diverted",
        "log": "+OK log level  [7]",
        "bogus command": "-ERR command not found",
        "sendmsg 0000-bad": "-ERR invalid session id [0000-bad]",
        "uuid_getvar U nope": "_undef_",
        "uuid_getvar U callagent_industry": "ecommerce",
        "uuid_setvar U ai_summary 주문 조회 문의": "+OK\n",
        "uuid_getvar U ai_summary": "주문 조회 문의",
        "uuid_break 0000-bad": "-ERR No such channel!\n",
        "uuid_broadcast 0000-bad /x.wav": "-ERR invalid uuid\n",
        "uuid_exists U": "true",
        "uuid_exists 0000-bad": "false",
        "nosuch_cmd x": "-ERR nosuch_cmd Command not found!\n",
        "uuid_transfer 0000-bad human": "-ERR No such channel!\n",
        "uuid_broadcast": "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n",
        "uuid_setvar_multi U a=1;b=2": "+OK\n",
        "uuid_getvar U b": "2",
        "uuid_answer U": "+OK\n",
        "exit": "+OK bye",
        "notice": ("Content-Type: text/disconnect-notice\nControlled-Session-UUID: U\n"
                   "Content-Disposition: disconnect\nContent-Length: 67\n\n"
                   "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"),
        "closed": "True",
    }
    # `noevents` the first time answered the no-longer-listening text; the dict kept the second answer.
    assert [c.reply for c in log.commands if c.line == "noevents"] == [
        "+OK no longer listening for events", "-ERR not listening for events"]
    assert log.ended_by == "fell_through" and log.fell_through
    assert (log.transfer.ext, log.transfer.dialplan, log.transfer.context, log.transfer.via) == (
        "human", "XML", "ai_escalation", "dialplan")
    assert log.channel_vars["ai_fallback"] == "true" and log.channel_vars["ai_summary"] == "주문 조회 문의"


def _teardown(linger: str | None, **sim_kwargs) -> list:
    got: list = []

    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        if linger is not None:
            peer.reply(linger)
        for msg in peer.read_until_closed(timeout=5):
            got.append(msg.headers.get("Content-Disposition") or (
                msg.event["Event-Name"], msg.event.get("Channel-State"), msg.event.get("Application")))

    run_call(agent, CallScript(steps=[{"sleep": 0.5}, "hangup"]), speed=SPEED, **sim_kwargs)
    return got


def test_caller_hangup_with_linger_sends_the_full_sequence_then_closes_after_n_seconds():
    t0 = time.monotonic()
    got = _teardown("linger 1")
    assert got == [("CHANNEL_HANGUP", "CS_EXECUTE", None), "linger", ("CHANNEL_UNPARK", "CS_EXECUTE", None),
                   ("CHANNEL_EXECUTE_COMPLETE", "CS_EXECUTE", "socket"), ("CHANNEL_STATE", "CS_HANGUP", None),
                   ("CHANNEL_STATE", "CS_REPORTING", None), ("CHANNEL_HANGUP_COMPLETE", "CS_REPORTING", None),
                   "disconnect"]
    assert time.monotonic() - t0 >= 1.0


def test_caller_hangup_without_linger_closes_at_once():
    assert _teardown(None) == [("CHANNEL_HANGUP", "CS_EXECUTE", None), "disconnect"]
    assert _teardown(None, hangup_event_on_no_linger=False) == ["disconnect"]


def test_agent_that_closes_after_hangup_complete_is_recorded():
    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        peer.reply("linger")
        peer.wait_event(named("CHANNEL_HANGUP_COMPLETE"))
        assert peer.reply("exit").headers["Reply-Text"] == "+OK bye"

    log = run_call(agent, CallScript(steps=[{"sleep": 2}, "hangup"]), speed=SPEED)
    assert log.ended_by == "caller" and log.closed_after_hangup_complete


def test_uuid_transfer_keeps_variables_and_the_socket_until_the_agent_closes():
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer, extra="")
        peer.reply(f"api uuid_setvar {uuid} escalation_reason caller_requested")
        got["reply"] = peer.reply(f"api uuid_transfer {uuid} human XML ai_escalation").body
        got["events"] = events_until(peer, lambda e: e.get("Channel-State") == "CS_EXECUTE"
                                      and e["Event-Name"] == "CHANNEL_STATE")
        got["still_open"] = peer.reply(f"api uuid_getvar {uuid} escalation_reason").body

    log = run_call(agent, speed=SPEED)
    assert got["reply"] == b"+OK\n" and got["still_open"] == b"caller_requested"
    assert [(e["Event-Name"], e.get("Application")) for e in got["events"]] == [
        ("CHANNEL_UNPARK", None), ("CHANNEL_EXECUTE_COMPLETE", "socket"), ("CHANNEL_STATE", None),
        ("CHANNEL_STATE", None)]
    assert (log.transfer.ext, log.transfer.dialplan, log.transfer.context, log.transfer.via) == (
        "human", "XML", "ai_escalation", "uuid_transfer")
    assert log.ended_by == "transfer" and not log.fell_through
    assert log.channel_vars["escalation_reason"] == "caller_requested"


def test_unreachable_agent_falls_through_to_the_human_queue():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again before the call: connection refused
    sim = FreeSwitchSim(("127.0.0.1", port), speed=SPEED)
    log = asyncio.run(sim.run_call(CallScript(steps=[{"say_text": "여보세요"}])))
    sim.cleanup()
    assert log.ended_by == "agent_unreachable" and log.connected_at is None
    assert (log.transfer.ext, log.transfer.via) == ("human", "dialplan")
    # The caller is still on the line in the queue: what they say is spoken into the queue, not the agent.
    assert log.commands == [] and [u.text for u in log.utterances] == ["여보세요"]
    assert [q.queue for q in log.queue] == ["support@default"]


def test_dtmf_event_carries_digit_and_no_variables():
    got = {}

    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        got["dtmf"] = peer.wait_event(named("DTMF"), timeout=5)
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    run_call(agent, CallScript(steps=[{"sleep": 0.4}, {"dtmf": "0"}, {"sleep": 60}]), speed=SPEED)
    event = got["dtmf"].event
    assert (event["DTMF-Digit"], event["DTMF-Duration"], event["DTMF-Source"]) == ("0", "2000", "RTP")
    assert not any(k.startswith("variable_") for k in event) and "Unique-ID" in event


def test_bgapi_replies_with_job_uuid_and_fires_background_job():
    got = {}

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer, extra="BACKGROUND_JOB")
        reply = peer.reply(f"bgapi uuid_exists {uuid}\nJob-UUID: job-1")
        got["reply"] = reply.raw
        got["job"] = peer.wait_event(named("BACKGROUND_JOB"))
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    run_call(agent, speed=SPEED)
    assert got["reply"] == (
        b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: job-1\nJob-UUID: job-1\n\n")
    job = got["job"]
    assert (job.event["Job-UUID"], job.event["Job-Command"]) == ("job-1", "uuid_exists")
    assert job.event_body == "true"


def test_first_command_other_than_connect_runs_without_a_reply():
    got = {}

    def agent(peer: EslPeer) -> None:
        peer.send("myevents\n\nconnect\n\n")
        got["first"] = peer.read_message()
        got["again"] = peer.reply("myevents").headers["Reply-Text"]
        peer.reply("sendmsg\ncall-command: hangup")
        peer.read_until_closed()

    log = run_call(agent, speed=SPEED)
    assert got["first"].headers["Event-Name"] == "CHANNEL_DATA"      # no reply came for the first myevents
    assert got["again"] == "-ERR aready enabled."
    assert [(c.line, c.reply) for c in log.commands[:2]] == [("myevents", None), ("connect", "+OK\n")]


def test_set_export_and_transfer_apps_and_an_unknown_app_hangs_up():
    got = {}

    def execute(peer: EslPeer, app: str, arg: str) -> None:
        peer.reply(f"sendmsg\ncall-command: execute\nexecute-app-name: {app}\nexecute-app-arg: {arg}")

    def agent(peer: EslPeer) -> None:
        connect(peer)
        subscribe(peer, extra="")
        execute(peer, "set", "greeting=${ai_did}-ok")
        execute(peer, "export", "nolocal:sip_h_X-Reason=test")
        got["set"] = peer.wait_event(named("CHANNEL_EXECUTE_COMPLETE", Application="export"))
        got["var"] = peer.reply("getvar greeting").headers["Reply-Text"]
        execute(peer, "no_such_app", "x")
        got["hangup"] = peer.wait_event(named("CHANNEL_HANGUP"))
        peer.read_until_closed()

    log = run_call(agent, speed=SPEED)
    assert got["var"] == "15881234-ok" and "sip_h_X-Reason" not in log.channel_vars
    assert got["hangup"].event["Hangup-Cause"] == "DESTINATION_OUT_OF_ORDER"
    assert log.ended_by == "agent_hangup" and any("no_such_app" in n for n in log.notes)

    def transferring(peer: EslPeer) -> None:
        connect(peer)
        execute(peer, "transfer", "human XML ai_escalation")
        time.sleep(0.2)
        peer.reply("exit")

    log = run_call(transferring, speed=SPEED)
    assert (log.transfer.ext, log.transfer.via, log.ended_by) == ("human", "transfer_app", "transfer")


def test_hangup_mid_playback_while_lingering(tmp_path):
    wav = write_tone(str(tmp_path / "long.wav"), 8.0)
    got = []

    def agent(peer: EslPeer) -> None:
        uuid = connect(peer)
        subscribe(peer)
        peer.reply("linger 1")
        peer.reply(f"api uuid_broadcast {uuid} {wav}")
        peer.wait_event(named("PLAYBACK_START"))
        peer.events.clear()
        # The api reply comes before the CHANNEL_HANGUP that the kill fired (events wait for api_exec).
        assert peer.reply(f"api uuid_kill {uuid} USER_BUSY").body == b"+OK\n"
        for msg in peer.read_until_closed():
            event = msg.event
            detail = (event.get("Playback-Status") or event.get("Application-Response")
                      or event.get("Hangup-Cause"))
            got.append(msg.headers.get("Content-Disposition") or (event["Event-Name"], detail))

    log = run_call(agent, speed=SPEED)
    assert got[:5] == [("CHANNEL_HANGUP", "USER_BUSY"), "linger", ("PLAYBACK_STOP", "done"),
                       ("CHANNEL_EXECUTE_COMPLETE", "PLAYBACK ERROR"), ("CHANNEL_UNPARK", "USER_BUSY")]
    assert got[-2:] == [("CHANNEL_HANGUP_COMPLETE", "USER_BUSY"), "disconnect"]
    assert log.ended_by == "agent_hangup" and log.heard[0].ms < 8000 and log.hangup_cause == "USER_BUSY"
