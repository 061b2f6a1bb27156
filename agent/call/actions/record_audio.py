"""The record verb: the AI part of the call as a stereo WAV (`uuid_record`, freeswitch.md §4).

Masking (`uuid_record … mask`) writes silence until `unmask`: PCI "pause and resume" while the caller types a
card number or PIN. Each mask is an event in the call record, so the pause is visible there. The file is
sealed (encrypted at rest) after the call by whoever the session hands it to.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.call.record import CallRecord
from agent.esl import commands as cmd
from agent.esl.connection import EslConnection
from agent.esl.errors import CallGone, EslError

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, conn: EslConnection, uuid: str, record: CallRecord, directory: Path):
        self.conn = conn
        self.uuid = uuid
        self.record = record
        self.path = directory / f"{uuid}.wav"
        self.active = False
        self.masked = False

    def start(self) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn.api(cmd.uuid_setvar(self.uuid, "RECORD_STEREO", "true"), check=False)
            self.active = cmd.api_ok(self.conn.api(cmd.uuid_record(self.uuid, "start", str(self.path)),
                                                   check=False))
        except CallGone:
            raise
        except (EslError, OSError) as exc:
            log.warning("call %s: recording not started: %s", self.uuid, exc)
            self.active = False
        self.record.event("recording_started" if self.active else "recording_failed")
        return self.active

    def mask(self, why: str) -> None:
        if self.active and not self.masked:
            self.masked = cmd.api_ok(self.conn.api(cmd.uuid_record(self.uuid, "mask", str(self.path)),
                                                   check=False))
            if self.masked:
                self.record.event("recording_masked", why=why)

    def unmask(self) -> None:
        if self.active and self.masked:
            self.masked = False
            self.conn.api(cmd.uuid_record(self.uuid, "unmask", str(self.path)), check=False)
            self.record.event("recording_unmasked")

    def stop(self) -> None:
        """Ends the recording (before a transfer: only the AI part is kept). Safe to call twice."""
        if not self.active:
            return
        self.active = False
        self.conn.api(cmd.uuid_record(self.uuid, "stop", str(self.path)), check=False)
        self.record.event("recording_stopped")
