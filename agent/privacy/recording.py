"""Call recordings at rest: the `uuid_record` commands (freeswitch.md §4), sealing the WAV FreeSWITCH wrote
(AES-256-GCM through `cryptography`, the plain file removed, a `recordings` row with duration, key id and the
masked spans), and opening it again for an authorised operator.

Sealed file: MAGIC, key-id length + key id, an 8-byte nonce prefix, the chunk size, then 1 MiB chunks each
sealed on its own (nonce = prefix + chunk index; the header, the call id, the index and a last-chunk flag are
authenticated), so a long call never sits in memory whole and a truncated or swapped file does not open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import struct
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.privacy.keys import Keyring, RecordingKeyError
from agent.store.db import Database

log = logging.getLogger(__name__)

MAGIC = b"CAREC1"
CHUNK = 1 << 20
_TAG = 16
SEALED_SUFFIX = ".enc"
Span = tuple[float, float]


# --- FreeSWITCH commands (mod_commands: uuid_record <uuid> [start|stop|mask|unmask] <path> [<limit>]) -------
def _check(value: str, what: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{what} must be one non-empty token without spaces, got {value!r}")
    return value


def record_command(uuid: str, action: str, path: str | Path) -> str:
    if action not in ("start", "stop", "mask", "unmask"):
        raise ValueError(f"unknown uuid_record action {action!r}")
    return f"uuid_record {_check(uuid, 'uuid')} {action} {_check(str(path), 'recording path')}"


def record_command_start(uuid: str, path: str | Path) -> str:
    """Starts recording; set the channel variable RECORD_STEREO=true first for caller/agent on two channels."""
    return record_command(uuid, "start", path)


def record_command_mask(uuid: str, path: str | Path) -> str:
    """Silence from now on (PCI pause while a card number or PIN is typed or said)."""
    return record_command(uuid, "mask", path)


def record_command_unmask(uuid: str, path: str | Path) -> str:
    return record_command(uuid, "unmask", path)


def record_command_stop(uuid: str, path: str | Path) -> str:
    return record_command(uuid, "stop", path)


# --- WAV --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WavInfo:
    duration_s: float
    channels: int
    rate: int


def wav_info(path: Path) -> WavInfo:
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        return WavInfo(round(w.getnframes() / rate, 3) if rate else 0.0, w.getnchannels(), rate)


def silence_spans(path: Path, spans: Sequence[Span]) -> None:
    """Zeroes the audio inside `spans` (seconds from the start), in place: for a secret noticed only after it
    was said, when `uuid_record … mask` came too late."""
    if not spans:
        return
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        frames = bytearray(w.readframes(w.getnframes()))
    width = params.sampwidth * params.nchannels
    for start, end in spans:
        a = max(0, int(start * params.framerate)) * width
        b = min(len(frames), int(end * params.framerate) * width)
        if b > a:
            frames[a:b] = bytes(b - a)
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(bytes(frames))


# --- sealing ----------------------------------------------------------------------------------------------
def _header(kid: str, prefix: bytes) -> bytes:
    k = kid.encode()
    return MAGIC + struct.pack(">B", len(k)) + k + prefix + struct.pack(">I", CHUNK)


def _aad(header: bytes, call_id: str, index: int, last: bool) -> bytes:
    return header + call_id.encode() + struct.pack(">I?", index, last)


def encrypt_file(src: Path, dst: Path, kid: str, key: bytes, call_id: str) -> str:
    """Writes `src` sealed to `dst` (atomically); returns the sealed file's sha256."""
    aes, prefix = AESGCM(key), secrets.token_bytes(8)
    header = _header(kid, prefix)
    tmp = dst.with_name(dst.name + ".tmp")
    digest = hashlib.sha256(header)
    with src.open("rb") as fin, tmp.open("wb") as fout:
        fout.write(header)
        index, chunk = 0, fin.read(CHUNK)
        while True:
            following = fin.read(CHUNK)
            last = not following
            sealed = aes.encrypt(prefix + struct.pack(">I", index), chunk, _aad(header, call_id, index, last))
            fout.write(sealed)
            digest.update(sealed)
            if last:
                break
            index, chunk = index + 1, following
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dst)
    return digest.hexdigest()


def _read_header(f) -> tuple[bytes, str, bytes, int]:  # noqa: ANN001 - a binary file object
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise RecordingKeyError("not a sealed callagent recording")
    (n,) = struct.unpack(">B", f.read(1))
    kid = f.read(n).decode()
    prefix = f.read(8)
    (chunk,) = struct.unpack(">I", f.read(4))
    return _header(kid, prefix), kid, prefix, chunk


def sealed_key_id(path: Path) -> str:
    with path.open("rb") as f:
        return _read_header(f)[1]


def decrypt_file(src: Path, dst: Path, keyring: Keyring, call_id: str) -> None:
    """Opens a sealed recording into `dst`; RecordingKeyError names the key it needs or says it was altered."""
    with src.open("rb") as fin:
        header, kid, prefix, chunk = _read_header(fin)
        aes = AESGCM(keyring.get(kid))
        tmp = dst.with_name(dst.name + ".tmp")
        try:
            with tmp.open("wb") as fout:
                index, block = 0, fin.read(chunk + _TAG)
                while True:
                    following = fin.read(chunk + _TAG)
                    last = not following
                    try:
                        fout.write(aes.decrypt(prefix + struct.pack(">I", index), block,
                                               _aad(header, call_id, index, last)))
                    except InvalidTag:
                        raise RecordingKeyError(f"recording of call {call_id} does not open: the file was "
                                                "altered, cut short or belongs to another call") from None
                    if last:
                        break
                    index, block = index + 1, following
            os.replace(tmp, dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@dataclass(frozen=True)
class SealedRecording:
    call_id: str
    path: Path
    duration_s: float
    channels: int
    rate: int
    key_id: str
    sha256: str
    masked_spans: tuple[Span, ...]


def spans_from_events(events: Sequence[tuple[str, datetime]], duration_s: float) -> list[Span]:
    """Masked intervals (seconds from the recording's start) from the call's recording_* events."""
    start: datetime | None = None
    opened: float | None = None
    spans: list[Span] = []
    for kind, at in events:
        if kind == "recording_started":
            start = at
        elif start is None:
            continue
        elif kind == "recording_masked" and opened is None:
            opened = (at - start).total_seconds()
        elif kind in ("recording_unmasked", "recording_stopped") and opened is not None:
            spans.append((round(opened, 3), round((at - start).total_seconds(), 3)))
            opened = None
    if opened is not None:
        spans.append((round(opened, 3), duration_s))
    return spans


def _event_spans(db: Database, call_id: str, duration_s: float) -> list[Span]:
    with db.connection() as conn:
        rows = conn.execute("SELECT kind, at FROM call_events WHERE call_id = %s AND kind LIKE 'recording%%'"
                            " ORDER BY seq", (call_id,)).fetchall()
    return spans_from_events([(r["kind"], r["at"]) for r in rows], duration_s)


def seal_recording(path: Path, call_id: str, keyring: Keyring, db: Database | None, *,
                   silence: Sequence[Span] = (), masked_spans: Sequence[Span] | None = None) -> SealedRecording:
    """Encrypts the finished WAV at `path` to `<path>.enc`, removes the plain file and stores a `recordings`
    row. Masked spans come from the call's recording_mask events unless given; `silence` spans are zeroed
    in the audio first and recorded as masked too."""
    path = Path(path)
    kid, key = keyring.sealing_key()
    if silence:
        silence_spans(path, silence)
    info = wav_info(path)
    if masked_spans is None:
        masked_spans = _event_spans(db, call_id, info.duration_s) if db is not None else []
    spans = tuple(sorted({*map(tuple, masked_spans), *map(tuple, silence)}))  # type: ignore[arg-type]
    sealed = path.with_name(path.name + SEALED_SUFFIX)
    digest = encrypt_file(path, sealed, kid, key, call_id)
    path.unlink()
    rec = SealedRecording(call_id, sealed, info.duration_s, info.channels, info.rate, kid, digest, spans)
    if db is not None:
        store_recording(db, rec)
    log.info("call %s: recording sealed (%.1f s, key %s)", call_id, rec.duration_s, kid)
    return rec


def store_recording(db: Database, rec: SealedRecording) -> None:
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO recordings (call_id, path, duration_s, channels, sample_rate, key_id, sha256,"
            " masked_spans) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
            " ON CONFLICT (call_id) DO UPDATE SET path = EXCLUDED.path, duration_s = EXCLUDED.duration_s,"
            " channels = EXCLUDED.channels, sample_rate = EXCLUDED.sample_rate, key_id = EXCLUDED.key_id,"
            " sha256 = EXCLUDED.sha256, masked_spans = EXCLUDED.masked_spans, created_at = now()",
            (rec.call_id, str(rec.path), rec.duration_s, rec.channels, rec.rate, rec.key_id, rec.sha256,
             json.dumps([list(s) for s in rec.masked_spans])))


def export_recording(db: Database, call_id: str, keyring: Keyring, out: Path) -> Path:
    """Decrypts one call's recording to `out` (a WAV) for an operator who holds the key."""
    with db.connection() as conn:
        row = conn.execute("SELECT path, key_id FROM recordings WHERE call_id = %s", (call_id,)).fetchone()
    if row is None:
        raise FileNotFoundError(f"no recording stored for call {call_id}")
    src = Path(row["path"])
    if not src.is_file():
        raise FileNotFoundError(f"recording file {src} of call {call_id} is missing")
    decrypt_file(src, Path(out), keyring, call_id)
    return Path(out)


def make_sealer(keyring: Keyring, db: Database | None,
                flush: Callable[[], object] | None = None) -> Callable[[str, Path], None]:
    """What the controller calls when a call ends: `sealer(call_id, wav_path)`. `flush` (the call store's)
    runs first, so the call's recording_masked/unmasked events are in the database to give the spans."""
    keyring.sealing_key()  # no key → fail at start-up, not after the first call

    def seal(call_id: str, path: Path) -> None:
        if flush is not None:
            flush()
        seal_recording(path, call_id, keyring, db)

    return seal
