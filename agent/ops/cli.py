"""`callagent` command line: run the controller and workers, the demo, the benchmarks, and operator views."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from agent.config import Config, ConfigError, load_config


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _db(cfg: Config, migrate: bool = True):
    from agent.store.db import open_database

    return open_database(cfg, migrate=migrate)


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from agent.call.controller import Controller
    from agent.ops.metrics import ControllerCollector, serve_metrics
    from agent.ops.runtime import build_call_deps

    controller = Controller(build_call_deps(cfg, _db(cfg)))
    serve_metrics(ControllerCollector(controller), cfg.controller.metrics_listen)
    controller.serve_forever()
    return 0


def cmd_asr_worker(cfg: Config, args: argparse.Namespace) -> int:
    import asyncio

    from agent.worker.server import serve

    asyncio.run(serve(cfg))
    return 0


def cmd_tts_worker(cfg: Config, args: argparse.Namespace) -> int:
    from agent.engines.tts.registry import create_tts
    from agent.engines.tts.server import serve

    serve(cfg.tts, create_tts(cfg.tts), cfg.path(cfg.tts.spool_dir))
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.demo import run_demo

    return run_demo(cfg, scenario=args.scenario, as_json=args.json, speed=args.speed)


def cmd_calls(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.report import print_calls
    from agent.store.calls import list_calls

    calls = list_calls(_db(cfg), args.last)
    print_calls(calls, as_json=args.json)
    return 0


def cmd_db_migrate(cfg: Config, args: argparse.Namespace) -> int:
    from agent.store.db import Database, resolve_dsn

    applied = Database(resolve_dsn(cfg)).migrate()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_kb_index(cfg: Config, args: argparse.Namespace) -> int:
    from agent.store.kb import index_paths

    stats = index_paths(_db(cfg), [Path(p) for p in args.paths], args.pack)
    print(json.dumps(stats, ensure_ascii=False, default=str))
    return 0


def cmd_bench(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.bench import main as bench_main

    return bench_main(cfg, args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callagent", description=__doc__)
    p.add_argument("--config", help="callagent.yaml (default: $CALLAGENT_CONFIG or ./callagent.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the outbound ESL controller (FreeSWITCH `socket` target)").set_defaults(fn=cmd_run)
    sub.add_parser("asr-worker", help="the mod_audio_fork WebSocket worker (VAD + ASR)").set_defaults(
        fn=cmd_asr_worker)
    sub.add_parser("tts-worker", help="the TTS engines behind HTTP, for a GPU host").set_defaults(fn=cmd_tts_worker)
    demo = sub.add_parser("demo", help="a whole simulated call on the embedded defaults")
    demo.add_argument("--scenario", help="scenario YAML (default: the shipped e-commerce call)")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.add_argument("--speed", type=float, default=1.0, help="simulated time speed-up (1 = real time)")
    demo.set_defaults(fn=cmd_demo)
    calls = sub.add_parser("calls", help="stored calls with their turns")
    calls.add_argument("--last", type=int, default=10)
    calls.add_argument("--json", action="store_true")
    calls.set_defaults(fn=cmd_calls)
    db = sub.add_parser("db", help="database tasks").add_subparsers(dest="db_command", required=True)
    db.add_parser("migrate", help="apply sql/ migrations").set_defaults(fn=cmd_db_migrate)
    kb = sub.add_parser("kb", help="knowledge base").add_subparsers(dest="kb_command", required=True)
    index = kb.add_parser("index", help="chunk and index Markdown/text files")
    index.add_argument("paths", nargs="+")
    index.add_argument("--pack", default=None, help="industry pack the documents belong to")
    index.set_defaults(fn=cmd_kb_index)
    bench = sub.add_parser("bench", help="benchmarks (latency, load, asr, all)")
    bench.add_argument("what", choices=("latency", "load", "asr", "all"))
    bench.add_argument("--calls", type=int, default=None)
    bench.add_argument("--quick", action="store_true", help="fewer calls and files")
    bench.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    _setup_logging(cfg.log_level)
    try:
        return args.fn(cfg, args)
    except ConfigError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
