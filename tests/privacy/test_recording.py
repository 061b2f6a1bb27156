"""Call recordings at rest: a WAV as FreeSWITCH writes it is sealed (AES-GCM, plain file gone, a row with key id,
duration and masked spans), opens again only through `callagent recording export` with the right key, and
is gone after `callagent purge` / `callagent forget`."""

from __future__ import annotations

import base64
import logging
import math
import os
import struct
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from agent.ops.cli import main
from agent.privacy import recording
from agent.privacy.keys import Keyring, RecordingKeyError, key_id
from agent.store.db import Database

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def write_wav(path: Path, seconds: float, rate: int = 16000) -> bytes:
    """Stereo 16-bit PCM as `uuid_record` writes with RECORD_STEREO=true: caller left, agent right."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        left = int(8000 * math.sin(2 * math.pi * 440 * i / rate))
        frames += struct.pack("<hh", left, -left)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path.read_bytes()


def add_call(db: Database, call_id: str, caller: str, started: datetime, *, mask_at: tuple[float, float] | None = None,
             ) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO calls (call_id, caller, started_at) VALUES (%s, %s, %s)", (call_id, caller, started))
        conn.execute("INSERT INTO turns (call_id, seq, speaker, started_at, text) VALUES (%s, 1, 'caller', %s,"
                     " '주문 조회요')", (call_id, started))
        events = [("recording_started", 0.0)]
        if mask_at:
            events += [("recording_masked", mask_at[0]), ("recording_unmasked", mask_at[1])]
        for seq, (kind, offset) in enumerate(events, 1):
            conn.execute("INSERT INTO call_events (call_id, seq, at, kind) VALUES (%s, %s, %s, %s)",
                         (call_id, seq, started + timedelta(seconds=offset), kind))


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """`main` configures process logging; put the test runner's handlers back afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.fixture
def setup(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Database, Path, Path]:
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    cfg = tmp_path / "callagent.yaml"
    cfg.write_text(f"controller:\n  recording_dir: {rec_dir}\nprivacy:\n  recording_key_env: TEST_REC_KEY\n",
                   encoding="utf-8")
    parts = conninfo_to_dict(db.dsn)  # the config takes a key=value DSN that starts with dbname=
    dsn = " ".join(f"{k}={v}" for k, v in sorted(parts.items(), key=lambda kv: kv[0] != "dbname"))
    monkeypatch.setenv("CALLAGENT_DB_DSN", dsn)
    monkeypatch.setenv("TEST_REC_KEY", base64.b64encode(KEY).decode())
    return db, rec_dir, cfg


def test_commands_follow_mod_commands_syntax() -> None:
    assert recording.record_command_start("a1b2", "/var/rec/a1b2.wav") == "uuid_record a1b2 start /var/rec/a1b2.wav"
    assert recording.record_command_mask("a1b2", "/r/x.wav") == "uuid_record a1b2 mask /r/x.wav"
    assert recording.record_command_unmask("a1b2", "/r/x.wav") == "uuid_record a1b2 unmask /r/x.wav"
    assert recording.record_command_stop("a1b2", "/r/x.wav") == "uuid_record a1b2 stop /r/x.wav"
    with pytest.raises(ValueError):
        recording.record_command_start("a1b2", "/r/my file.wav")  # FreeSWITCH splits arguments on spaces


def test_seal_then_export_with_the_key(setup, capsys: pytest.CaptureFixture[str]) -> None:
    db, rec_dir, cfg = setup
    add_call(db, "call-1", "01055550000", NOW, mask_at=(1.5, 4.0))
    wav = rec_dir / "call-1.wav"
    original = write_wav(wav, 40.0)  # 2.5 MB: several sealed chunks
    sealed = recording.seal_recording(wav, "call-1", Keyring.of(KEY), db)
    assert not wav.exists() and sealed.path == rec_dir / "call-1.wav.enc"
    body = sealed.path.read_bytes()
    assert b"RIFF" not in body and b"WAVE" not in body and original[1000:1064] not in body
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM recordings WHERE call_id = 'call-1'").fetchone()
    assert row["key_id"] == key_id(KEY) and row["channels"] == 2 and row["sample_rate"] == 16000
    assert row["duration_s"] == pytest.approx(40.0)
    assert row["masked_spans"] == [[1.5, 4.0]]  # the PCI pause, visible in the record

    out = rec_dir.parent / "export.wav"
    assert main(["--config", str(cfg), "recording", "export", "call-1", "--out", str(out)]) == 0
    assert out.read_bytes() == original


def test_wrong_key_or_altered_file_gives_a_clear_error(setup, monkeypatch, capsys) -> None:
    db, rec_dir, cfg = setup
    add_call(db, "call-2", "01055550000", NOW)
    write_wav(rec_dir / "call-2.wav", 1.0)
    sealed = recording.seal_recording(rec_dir / "call-2.wav", "call-2", Keyring.of(KEY), db)
    out = rec_dir.parent / "x.wav"
    monkeypatch.setenv("TEST_REC_KEY", base64.b64encode(OTHER_KEY).decode())
    assert main(["--config", str(cfg), "recording", "export", "call-2", "--out", str(out)]) == 2
    assert f"sealed with key {key_id(KEY)}" in capsys.readouterr().err and not out.exists()

    monkeypatch.setenv("TEST_REC_KEY", f"{base64.b64encode(OTHER_KEY).decode()},{base64.b64encode(KEY).decode()}")
    data = bytearray(sealed.path.read_bytes())
    data[-40] ^= 1
    sealed.path.write_bytes(bytes(data))
    assert main(["--config", str(cfg), "recording", "export", "call-2", "--out", str(out)]) == 2
    assert "does not open" in capsys.readouterr().err and not out.exists()


def test_a_file_moved_to_another_call_does_not_open(setup) -> None:
    db, rec_dir, _ = setup
    write_wav(rec_dir / "a.wav", 0.5)
    sealed = recording.seal_recording(rec_dir / "a.wav", "call-a", Keyring.of(KEY), None)
    with pytest.raises(RecordingKeyError, match="does not open"):
        recording.decrypt_file(sealed.path, rec_dir / "b.wav", Keyring.of(KEY), "call-b")


def test_no_key_means_no_sealer() -> None:
    with pytest.raises(RecordingKeyError, match="no recording key"):
        recording.make_sealer(Keyring(), None)


def test_silenced_spans_are_zero_in_the_sealed_audio(tmp_path: Path) -> None:
    wav = tmp_path / "s.wav"
    write_wav(wav, 2.0, rate=8000)
    sealed = recording.seal_recording(wav, "s", Keyring.of(KEY), None, silence=[(0.5, 1.0)], masked_spans=[])
    out = tmp_path / "open.wav"
    recording.decrypt_file(sealed.path, out, Keyring.of(KEY), "s")
    with wave.open(str(out), "rb") as w:
        frames = w.readframes(w.getnframes())
    width = 4
    assert frames[int(0.5 * 8000) * width:int(1.0 * 8000) * width] == bytes(int(0.5 * 8000) * width)
    assert any(frames[int(1.2 * 8000) * width:int(1.3 * 8000) * width])
    assert sealed.masked_spans == ((0.5, 1.0),)


def _count(db: Database, table: str, call_id: str) -> int:
    with db.connection() as conn:
        return conn.execute(f"SELECT count(*) AS n FROM {table} WHERE call_id = %s", (call_id,)).fetchone()["n"]


def test_purge_deletes_what_is_past_retention(setup, capsys) -> None:
    db, rec_dir, cfg = setup
    old, recent = datetime.now(UTC) - timedelta(days=100), datetime.now(UTC) - timedelta(days=2)
    for call_id, started in (("old", old), ("new", recent)):
        add_call(db, call_id, "01055550000", started)
        write_wav(rec_dir / f"{call_id}.wav", 0.5)
        recording.seal_recording(rec_dir / f"{call_id}.wav", call_id, Keyring.of(KEY), db)
    (rec_dir / "stray.wav").write_bytes(b"RIFF")  # a seal that failed long ago
    os.utime(rec_dir / "stray.wav", (old.timestamp(), old.timestamp()))
    assert main(["--config", str(cfg), "purge", "--older-than", "90"]) == 0
    assert '"calls": 1' in capsys.readouterr().out
    assert [_count(db, t, "old") for t in ("calls", "turns", "call_events", "recordings")] == [0, 0, 0, 0]
    assert not (rec_dir / "old.wav.enc").exists() and not (rec_dir / "stray.wav").exists()
    assert _count(db, "calls", "new") == 1 and (rec_dir / "new.wav.enc").exists()


def test_forget_erases_one_callers_calls(setup, capsys) -> None:
    db, rec_dir, cfg = setup
    add_call(db, "mine", "01055550000", NOW)
    add_call(db, "mine-intl", "+821055550000", NOW)
    add_call(db, "theirs", "01077778888", NOW)
    for call_id in ("mine", "theirs"):
        write_wav(rec_dir / f"{call_id}.wav", 0.5)
        recording.seal_recording(rec_dir / f"{call_id}.wav", call_id, Keyring.of(KEY), db)
    assert main(["--config", str(cfg), "forget", "--caller", "+82 10-5555-0000"]) == 0
    assert '"calls": 2' in capsys.readouterr().out
    for call_id in ("mine", "mine-intl"):
        assert [_count(db, t, call_id) for t in ("calls", "turns", "recordings")] == [0, 0, 0]
    assert not (rec_dir / "mine.wav.enc").exists()
    assert _count(db, "calls", "theirs") == 1 and (rec_dir / "theirs.wav.enc").exists()


def test_spans_from_events() -> None:
    t0 = NOW
    events = [("recording_started", t0), ("recording_masked", t0 + timedelta(seconds=2)),
              ("recording_unmasked", t0 + timedelta(seconds=5)), ("recording_masked", t0 + timedelta(seconds=9))]
    assert recording.spans_from_events(events, 12.0) == [(2.0, 5.0), (9.0, 12.0)]


def test_sealer_takes_the_pci_pause_from_the_calls_own_events(setup) -> None:
    """The controller's Recorder writes recording_masked/unmasked through the call record; the sealer flushes
    the store first, so the pause is in the recordings row even when the call ended a moment ago."""
    from agent.call.channel import ChannelInfo
    from agent.call.record import CallRecord
    from agent.store.calls import CallStore

    db, rec_dir, _ = setup
    store = CallStore(db, rec_dir.parent / "spool")
    record = CallRecord(store, ChannelInfo(uuid="live-1", caller="01055550000"))
    for kind in ("recording_started", "recording_masked", "recording_unmasked", "recording_stopped"):
        record.event(kind)
    record.end("caller_hangup")
    write_wav(rec_dir / "live-1.wav", 0.5)
    seal = recording.make_sealer(Keyring.of(KEY), db, flush=store.flush)
    seal("live-1", rec_dir / "live-1.wav")
    store.close()
    with db.connection() as conn:
        row = conn.execute("SELECT masked_spans FROM recordings WHERE call_id = 'live-1'").fetchone()
    assert len(row["masked_spans"]) == 1
    start, end = row["masked_spans"][0]
    assert 0 <= start <= end


def test_controller_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.config import parse_config
    from agent.privacy.commands import controller_hooks
    from agent.privacy.pii import mask_text

    assert controller_hooks(parse_config({}), None) == {"mask": mask_text}  # recording off: nothing to seal
    if "recording_dir" not in parse_config({}).controller.__dataclass_fields__:
        pytest.skip("controller.recording_dir is not part of the configuration yet")
    on = {"controller": {"recording_dir": str(tmp_path),
                         "greeting": "저는 인공지능 상담원입니다. 통화 내용은 녹음됩니다."},
          "privacy": {"recording_key_env": "TEST_REC_KEY"}}
    monkeypatch.delenv("TEST_REC_KEY", raising=False)
    with pytest.raises(RecordingKeyError, match="no recording key"):
        controller_hooks(parse_config(on), None)
    monkeypatch.setenv("TEST_REC_KEY", base64.b64encode(KEY).decode())
    hooks = controller_hooks(parse_config(on), None)
    write_wav(tmp_path / "h.wav", 0.2)
    hooks["seal_recording"]("h", tmp_path / "h.wav")
    assert (tmp_path / "h.wav.enc").exists() and not (tmp_path / "h.wav").exists()
