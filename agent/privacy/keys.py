"""Recording keys: AES-256 keys from an environment variable or a key file (base64 of 32 bytes each, one per
line or comma-separated; the first seals new recordings, the others only open older ones after a rotation).
A key's id is derived from the key itself, so the id stored with a recording names the key without
revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

KEY_BYTES = 32


class RecordingKeyError(RuntimeError):
    """No usable key, or the recording cannot be opened with the keys at hand."""


def key_id(key: bytes) -> str:
    return "k" + hashlib.sha256(b"callagent-recording-key\0" + key).hexdigest()[:16]


def new_key() -> str:
    """A fresh key in the form the environment variable or key file takes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _parse(text: str, where: str) -> list[bytes]:
    keys = []
    for item in text.replace(",", "\n").split():
        try:
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RecordingKeyError(f"{where}: a key is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise RecordingKeyError(f"{where}: a key must be {KEY_BYTES} bytes (base64), got {len(key)}")
        keys.append(key)
    return keys


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes] = field(default_factory=dict)
    active: str = ""

    @classmethod
    def of(cls, *keys: bytes) -> Keyring:
        return cls({key_id(k): k for k in keys}, key_id(keys[0]) if keys else "")

    @classmethod
    def load(cls, *, env_name: str = "", key_file: Path | None = None) -> Keyring:
        """Keys from `$env_name` first, then the key file; empty when neither is set."""
        keys: list[bytes] = []
        value = os.environ.get(env_name, "") if env_name else ""
        if value.strip():
            keys += _parse(value, f"${env_name}")
        if key_file is not None and key_file.is_file():
            keys += _parse(key_file.read_text(encoding="ascii", errors="replace"), str(key_file))
        return cls.of(*keys)

    def sealing_key(self) -> tuple[str, bytes]:
        if not self.active:
            raise RecordingKeyError("no recording key: set the environment variable named by "
                                    "privacy.recording_key_env (base64 of 32 bytes) or privacy.recording_key_file")
        return self.active, self.keys[self.active]

    def get(self, kid: str) -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise RecordingKeyError(f"the recording was sealed with key {kid}, which is not among the keys "
                                    f"given ({', '.join(self.keys) or 'none'})")
        return key
