"""Operator commands for data protection: `callagent recording export`, `callagent purge`, `callagent forget`,
and `recording_keyring(cfg)`, the keys the controller seals with."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from agent.config import Config
from agent.privacy.keys import Keyring, RecordingKeyError, new_key


def recording_keyring(cfg: Config) -> Keyring:
    p = cfg.privacy
    return Keyring.load(env_name=p.recording_key_env,
                        key_file=cfg.path(p.recording_key_file) if p.recording_key_file else None)


def controller_hooks(cfg: Config, db, flush: Callable[[], object] | None = None) -> dict[str, Callable]:  # noqa: ANN001
    """The controller's privacy hooks, for `CallDeps(**controller_hooks(cfg, db, store.flush))`: `mask` for
    the ai_summary channel variable, and `seal_recording` when recording is on. Recording without a key
    stops start-up here (RecordingKeyError), not after the first call."""
    from agent.privacy.pii import mask_text
    from agent.privacy.recording import make_sealer

    hooks: dict[str, Callable] = {"mask": mask_text}
    if _recording_dir(cfg) is not None:
        hooks["seal_recording"] = make_sealer(recording_keyring(cfg), db, flush=flush)
    return hooks


def _recording_dir(cfg: Config) -> Path | None:
    directory = getattr(cfg.controller, "recording_dir", "")
    return cfg.path(directory) if directory else None


def _db(cfg: Config):  # noqa: ANN202 - agent.store.db.Database, imported late like the other commands
    from agent.store.db import open_database

    return open_database(cfg)


def cmd_recording_export(cfg: Config, args: argparse.Namespace) -> int:
    from agent.privacy.recording import export_recording

    try:
        out = export_recording(_db(cfg), args.call_id, recording_keyring(cfg), Path(args.out))
    except (RecordingKeyError, FileNotFoundError) as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def cmd_recording_key(cfg: Config, args: argparse.Namespace) -> int:
    print(new_key())
    return 0


def cmd_purge(cfg: Config, args: argparse.Namespace) -> int:
    from agent.privacy.retention import now_utc, purge

    days = args.older_than if args.older_than is not None else cfg.privacy.retention_days
    result = purge(_db(cfg), days, now=now_utc(), recording_dir=_recording_dir(cfg))
    print(json.dumps(result))
    return 0


def cmd_forget(cfg: Config, args: argparse.Namespace) -> int:
    from agent.privacy.retention import forget

    try:
        result = forget(_db(cfg), args.caller, recording_dir=_recording_dir(cfg))
    except ValueError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    rec = sub.add_parser("recording", help="sealed call recordings").add_subparsers(dest="recording_command",
                                                                                    required=True)
    export = rec.add_parser("export", help="decrypt one call's recording (needs the recording key)")
    export.add_argument("call_id")
    export.add_argument("--out", required=True, help="the WAV file to write")
    export.set_defaults(fn=cmd_recording_export)
    rec.add_parser("new-key", help="print a fresh recording key (base64 of 32 bytes)").set_defaults(
        fn=cmd_recording_key)
    purge = sub.add_parser("purge", help="delete calls, transcripts and recordings past retention")
    purge.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                       help="default: privacy.retention_days")
    purge.set_defaults(fn=cmd_purge)
    forget = sub.add_parser("forget", help="erase one caller's calls and recordings (deletion request)")
    forget.add_argument("--caller", required=True, metavar="NUMBER")
    forget.set_defaults(fn=cmd_forget)
