"""What the channel brings: a wideband (G.722) call, a tenant name in Korean, keypad tones on an in-band trunk,
stale events after a restart, and the AI part of the call recorded, masked while keys are typed, and sealed."""

from __future__ import annotations

import time

import pytest

from agent.privacy.keys import new_key
from agent.sim import CallScript, FreeSwitchSim
from tests.call.harness import make_stack, stored_call

SPEED = 3.0


def test_a_g722_call_with_a_korean_tenant_is_served_at_16_khz(tmp_path, db):
    stack = make_stack(tmp_path, db)
    try:
        script = CallScript(codec="G722", variables={"callagent_tenant": "하늘쇼핑 '본점'"}, steps=[
            {"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"}, {"wait_playback": {}},
            {"wait_idle": {"settle_ms": 300}}, "hangup"])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert log.fork.connected and '"tenant":"하늘쇼핑 ’본점’"' in log.fork.metadata
        assert log.heard[0].path.endswith("-16000.wav")  # the greeting was made for the call's own rate
        call = stored_call(stack, db)
        assert [t["source"] for t in call["turns"]].count("policy") == 1 and call["end_reason"] == "caller_hangup"
    finally:
        stack.stop()


@pytest.mark.parametrize("inband", [True, False])
def test_keypad_tones_on_an_inband_trunk_need_start_dtmf(tmp_path, db, inband):
    stack = make_stack(tmp_path, db, overrides={"controller": {"inband_dtmf": inband}})
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"dtmf": {"digits": "4321#", "inband": True}},
                                   {"sleep": 4}, "hangup"])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        received = stack.policy.conversations[0].received
        assert received == ([("4321", "dtmf")] if inband else [])
    finally:
        stack.stop()


def test_stale_events_from_before_the_socket_are_ignored(tmp_path, db):
    stack = make_stack(tmp_path, db)
    try:
        sim = FreeSwitchSim(("127.0.0.1", stack.controller.port), speed=SPEED, late_events=True)
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"}, {"wait_playback": {}},
                                   {"wait_idle": {"settle_ms": 300}}, "hangup"])
        (log,) = sim.run_calls([script])
        assert not log.errors, log.errors
        call = stored_call(stack, db)
        assert not [e for e in call["events"] if e["kind"].startswith("playback_")]
        assert [t["source"] for t in call["turns"]].count("policy") == 1
    finally:
        stack.stop()


def test_the_ai_part_is_recorded_masked_while_keys_are_typed_and_sealed(tmp_path, db, monkeypatch):
    monkeypatch.setenv("CALLAGENT_RECORDING_KEY", new_key())
    stack = make_stack(tmp_path, db, overrides={"controller": {"recording_dir": "rec"}})
    from agent.privacy.commands import controller_hooks

    hooks = controller_hooks(stack.cfg, db, stack.deps.store.flush)
    stack.deps.seal_recording = hooks["seal_recording"]
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"dtmf": "1234#"}, {"wait_playback": {}},
                                   {"wait_idle": {"settle_ms": 300}}, {"dtmf": "0"},
                                   {"expect_transfer": {"timeout_s": 20}}])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        api = log.api_commands()
        path = str(tmp_path / "rec" / f"{log.uuid}.wav")
        assert f"uuid_setvar {log.uuid} RECORD_STEREO true" in api
        start = api.index(f"uuid_record {log.uuid} start {path}")
        stop = api.index(f"uuid_record {log.uuid} stop {path}")
        assert start < api.index(f"uuid_record {log.uuid} mask {path}") < stop
        assert stop < api.index(f"uuid_transfer {log.uuid} human XML ai_escalation")  # only the AI part
        (rec,) = log.recordings
        assert rec.channels == 2 and rec.masked and rec.masked[0][1] is not None
        call = stored_call(stack, db)
        kinds = [e["kind"] for e in call["events"]]
        assert kinds.index("recording_masked") < kinds.index("recording_unmasked") < kinds.index("recording_stopped")
    finally:
        stack.stop()
    # Sealed after the call (in the background): the plain WAV goes, an encrypted file and its row remain.
    deadline = time.monotonic() + 20
    while any(p.suffix == ".wav" for p in (tmp_path / "rec").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    sealed = list((tmp_path / "rec").iterdir())
    assert sealed and not any(p.suffix == ".wav" for p in sealed)
    with db.connect() as conn:
        rows = conn.execute("SELECT key_id FROM recordings WHERE call_id = %s", (log.uuid,)).fetchall()
    assert len(rows) == 1


def test_with_a_fork_secret_the_fork_carries_its_token_and_a_forged_one_is_refused(tmp_path, db, monkeypatch):
    import asyncio
    import json

    import websockets

    from agent.call.actions.listen import fork_token

    monkeypatch.setenv("CALLAGENT_FORK_SECRET", "s3cret-for-tests")
    stack = make_stack(tmp_path, db)
    try:
        script = CallScript(steps=[{"wait_idle": {}}, {"say_text": "배송 조회 부탁드려요"}, {"wait_playback": {}},
                                   {"wait_idle": {"settle_ms": 300}}, "hangup"])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        meta = json.loads(log.fork.metadata)
        assert meta["token"] == fork_token(log.uuid, "s3cret-for-tests")
        assert [t["source"] for t in stored_call(stack, db)["turns"]].count("policy") == 1

        async def forge() -> int | None:  # any local process can dial the worker; without the token it is shut
            url = f"ws://127.0.0.1:{stack.worker.port}/{log.uuid}"
            async with websockets.connect(url, subprotocols=["audio.drachtio.org"]) as ws:
                await ws.send(json.dumps({"call_id": log.uuid, "rate": 16000, "token": "0" * 32}))
                try:
                    while True:  # an error frame may come first; then the close
                        await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None

        assert asyncio.run(forge()) == 1008  # policy violation
    finally:
        stack.stop()
