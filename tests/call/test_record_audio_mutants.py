"""The record and hang-up verbs on a fake socket: the `uuid_record` lines FreeSWITCH receives (stereo first, start,
mask and unmask for a keypad entry, stop once), each reflected in the call record, and a refusal or a failure that
never stops the call; the hang-up is one `uuid_kill` whose refusal is not an error."""

from __future__ import annotations

import pytest

from agent.call.actions.hangup import hang_up
from agent.call.actions.record_audio import Recorder
from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.esl.errors import CallGone, CommandFailed, ReplyTimeout
from tests.call.fast_fakes import UUID, FakeConn, FakeStore


def _recorder(tmp_path, **conn) -> tuple[Recorder, FakeConn, FakeStore]:
    c, store = FakeConn(**conn), FakeStore()
    record = CallRecord(store, ChannelInfo(uuid=UUID))  # type: ignore[arg-type]
    return Recorder(c, UUID, record, tmp_path / "rec" / "day"), c, store  # type: ignore[arg-type]


def test_start_records_stereo_into_the_calls_file(tmp_path):
    r, conn, store = _recorder(tmp_path)
    assert r.start() is True and r.active
    path = tmp_path / "rec" / "day" / f"{UUID}.wav"
    assert r.path == path and path.parent.is_dir()
    assert conn.lines() == [f"api uuid_setvar {UUID} RECORD_STEREO true", f"api uuid_record {UUID} start {path}"]
    assert store.kinds() == ["recording_started"]


@pytest.mark.parametrize("conn", [{"api_replies": {"uuid_record": "-ERR cannot open\n"}},
                                  {"fail": {"uuid_setvar": CommandFailed("uuid_setvar", "-ERR")}},
                                  {"fail": {"uuid_record": ReplyTimeout("no reply")}}])
def test_a_recording_freeswitch_refuses_is_recorded_and_the_call_goes_on(tmp_path, conn):
    r, c, store = _recorder(tmp_path, **conn)
    assert r.start() is False and not r.active
    assert store.kinds() == ["recording_failed"]
    r.mask("keypad")
    r.stop()
    assert store.kinds() == ["recording_failed"] and not any("mask" in x or "stop" in x for x in c.lines())


def test_a_folder_that_cannot_be_made_fails_the_recording_only(tmp_path):
    (tmp_path / "rec").write_text("a file, not a folder")
    r, conn, store = _recorder(tmp_path)
    assert r.start() is False and store.kinds() == ["recording_failed"] and conn.sent == []


def test_a_caller_gone_at_start_ends_the_call(tmp_path):
    r, _, _ = _recorder(tmp_path, fail={"uuid_setvar": CallGone("eof")})
    with pytest.raises(CallGone):
        r.start()


def test_a_keypad_entry_masks_once_and_unmasks_once(tmp_path):
    r, conn, store = _recorder(tmp_path)
    r.start()
    r.unmask()  # not masked: nothing to undo
    r.mask("keypad")
    r.mask("keypad")
    assert r.masked
    r.unmask()
    r.unmask()
    assert not r.masked
    path = r.path
    assert conn.lines()[2:] == [f"api uuid_record {UUID} mask {path}", f"api uuid_record {UUID} unmask {path}"]
    assert [e["kind"] for e in store.events()] == ["recording_started", "recording_masked", "recording_unmasked"]
    assert store.events("recording_masked")[0]["detail"] == {"why": "keypad"}


def test_a_refused_mask_is_not_recorded_as_masked(tmp_path):
    r, conn, store = _recorder(tmp_path)
    r.start()
    conn.api_replies["uuid_record"] = "-ERR\n"
    r.mask("keypad")
    assert not r.masked and store.kinds() == ["recording_started"]
    r.unmask()
    assert len(conn.sent) == 3


def test_stop_goes_out_once(tmp_path):
    r, conn, store = _recorder(tmp_path)
    r.start()
    r.stop()
    r.stop()
    assert conn.lines()[2:] == [f"api uuid_record {UUID} stop {r.path}"]
    assert store.kinds() == ["recording_started", "recording_stopped"] and not r.active
    r.mask("keypad")  # after the stop nothing is masked
    assert len(conn.sent) == 3


def test_hang_up_kills_the_channel_and_a_refusal_is_no_error():
    conn = FakeConn(api_replies={"uuid_kill": "-ERR No such channel!\n"})
    hang_up(conn, UUID)  # type: ignore[arg-type]
    assert conn.lines() == [f"api uuid_kill {UUID} NORMAL_CLEARING"]


def test_a_refused_stereo_setting_still_records(tmp_path):
    r, conn, store = _recorder(tmp_path, api_replies={"uuid_setvar": "-ERR no such channel\n"})
    assert r.start() is True and store.kinds() == ["recording_started"]


def test_a_folder_that_already_exists_is_used(tmp_path):
    (tmp_path / "rec" / "day").mkdir(parents=True)
    r, _, store = _recorder(tmp_path)
    assert r.start() is True and store.kinds() == ["recording_started"]


def test_nothing_is_masked_or_stopped_before_the_recording_starts(tmp_path):
    r, conn, store = _recorder(tmp_path)
    r.mask("keypad")
    r.stop()
    assert conn.sent == [] and store.kinds() == []


def test_a_refused_unmask_or_stop_is_no_error(tmp_path):
    r, conn, store = _recorder(tmp_path)
    r.start()
    r.mask("keypad")
    conn.api_replies["uuid_record"] = "-ERR Cannot locate session!\n"
    r.unmask()
    r.stop()
    assert store.kinds()[-2:] == ["recording_unmasked", "recording_stopped"] and not r.active


def test_a_recording_that_cannot_start_is_logged_with_the_call_and_the_error(tmp_path, caplog):
    caplog.set_level("WARNING", logger="agent.call.actions.record_audio")
    r, _, _ = _recorder(tmp_path, fail={"uuid_record": ReplyTimeout("no reply to 'api'")})
    r.start()
    assert [x.getMessage() for x in caplog.records] == [f"call {UUID}: recording not started: no reply to 'api'"]
