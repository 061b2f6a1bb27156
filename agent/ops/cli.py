"""`callagent` command line: run the controller and workers, the demo, the benchmarks, and operator views."""

from __future__ import annotations

import argparse
import json
import sys

from agent.config import Config, ConfigError, load_config


def _setup_logging(level: str, fmt: str = "text") -> None:
    from agent.ops.logs import configure_logging
    from agent.privacy.logs import install_log_filter

    configure_logging(level, fmt)
    install_log_filter()  # a caller's card, phone or account number never reaches a log line


def _db(cfg: Config, migrate: bool = True):
    from agent.store.db import open_database

    return open_database(cfg, migrate=migrate)


def _serve_ops(cfg: Config, controller, collector) -> None:
    """/metrics /ready /live /status on controller.metrics_listen; SIGTERM drains: no new calls, live calls
    finish, then `serve_forever` returns (bounded by controller.drain_timeout_s)."""
    import signal

    import gevent

    from agent.ops.metrics import serve_metrics
    from agent.ops.status import OpsServer

    registry = serve_metrics(collector, None)
    from agent.store.quarantine import StoreCollector

    registry.register(StoreCollector(controller.deps.store))  # quarantined records, spool, refused starts
    if cfg.controller.metrics_listen is not None:
        loop = gevent.get_hub().loop
        OpsServer(controller, registry, cfg.controller.metrics_listen,
                  drain=lambda: loop.run_callback_threadsafe(controller.drain)).start()
    gevent.signal_handler(signal.SIGTERM, controller.drain)


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from agent.analytics.runner import instrument
    from agent.call.controller import Controller
    from agent.ops.metrics import ControllerCollector
    from agent.ops.runtime import build_call_deps

    db = _db(cfg)
    deps = build_call_deps(cfg, db)
    instrument(deps, db, cfg)  # counters from the store's operations; analytics at each call's end
    controller = Controller(deps)
    _serve_ops(cfg, controller, ControllerCollector(controller))
    controller.serve_forever()  # returns once a SIGTERM drain is done
    controller.deps.store.close()  # the drained calls' last records reach PostgreSQL (or the spool) first
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


def cmd_analyze(cfg: Config, args: argparse.Namespace) -> int:
    from datetime import datetime

    from agent.analytics.settings import parse_analytics
    from agent.analytics.store import backfill

    since = datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        since = since.astimezone()  # a bare date means local time
    done = 0
    for _ in backfill(_db(cfg), parse_analytics(cfg.analytics), cfg.tts.engine, since=since, redo=args.all):
        done += 1
    print(f"analyzed {done} calls")
    return 0


def cmd_dashboard(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.dashboard.server import serve_dashboard

    return serve_dashboard(cfg, _db(cfg), listen=args.listen)


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.status import add_last_turns, fetch_status, render_status

    urls = list(args.url or cfg.controller.status_urls)
    if not urls and cfg.controller.metrics_listen is not None:
        host, port = cfg.controller.metrics_listen
        urls = [f"http://{host}:{port}"]
    if not urls:
        print("callagent: no hosts: set controller.status_urls (or metrics_listen), or pass --url", file=sys.stderr)
        return 2
    hosts = fetch_status(urls)
    if cfg.store.dsn is not None:  # each call's last turn, as stored
        try:
            add_last_turns(_db(cfg, migrate=False), hosts)
        except Exception as exc:  # noqa: BLE001 - the live view must not depend on the database
            print(f"callagent: last turns unavailable: {exc}", file=sys.stderr)
    print(json.dumps(hosts, ensure_ascii=False, indent=1) if args.json else render_status(hosts))
    return 1 if any("error" in h for h in hosts) else 0


def cmd_drain(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.status import drain_and_wait

    url = args.url
    if url is None and cfg.controller.metrics_listen is not None:
        url = "http://127.0.0.1:{1}".format(*cfg.controller.metrics_listen)
    if url is None:
        print("callagent: set controller.metrics_listen or pass --url", file=sys.stderr)
        return 2
    return drain_and_wait(url, args.wait if args.wait is not None else cfg.controller.drain_timeout_s)


def cmd_tail(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.tail import TailError, tail

    try:
        return tail(_db(cfg, migrate=False), args.call_id, sys.stdout, follow=not args.no_follow)
    except TailError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 1


def cmd_callbacks(cfg: Config, args: argparse.Namespace) -> int:
    from agent.ops.callbacks import list_callbacks, run_callbacks

    if args.list:
        for row in list_callbacks(_db(cfg)):
            print(json.dumps(row, ensure_ascii=False, default=str))
        return 0
    return run_callbacks(cfg, _db(cfg))


def cmd_db_migrate(cfg: Config, args: argparse.Namespace) -> int:
    from agent.store.db import Database, resolve_dsn

    applied = Database(resolve_dsn(cfg)).migrate()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_kb_index(cfg: Config, args: argparse.Namespace) -> int:
    from agent.dialog.knowledge import index_configured

    try:
        stats = index_configured(_db(cfg), cfg.dialog, args.paths, args.pack)
    except FileNotFoundError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats, ensure_ascii=False, default=str))
    return 0


def cmd_bench(cfg: Config, args: argparse.Namespace) -> int:
    if args.what == "asr" and (args.engine or args.dataset):
        from agent.lifecycle.commands import cmd_bench_compare

        return cmd_bench_compare(cfg, args)  # named engines on one set, segment by segment
    if args.what == "faults":
        from agent.ops.bench.faults import main as faults_main

        return faults_main(cfg, args)
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
    status = sub.add_parser("status", help="live calls on every controller host (state, age)")
    status.add_argument("--url", action="append", help="a host's ops URL (default controller.status_urls)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(fn=cmd_status)
    drain = sub.add_parser("drain", help="stop taking calls on this host and wait for live calls to end")
    drain.add_argument("--url", help="the controller's ops URL (default: controller.metrics_listen on loopback)")
    drain.add_argument("--wait", type=float, help="seconds to wait (default controller.drain_timeout_s)")
    drain.set_defaults(fn=cmd_drain)
    tail_p = sub.add_parser("tail", help="one call's events and turns as they happen")
    tail_p.add_argument("call_id", help="the call id (a unique prefix is enough)")
    tail_p.add_argument("--no-follow", action="store_true", help="print what is stored and stop")
    tail_p.set_defaults(fn=cmd_tail)
    callbacks = sub.add_parser("callbacks", help="place requested callbacks with originate (inbound ESL)")
    callbacks.add_argument("--list", action="store_true", help="print stored callback requests and exit")
    callbacks.set_defaults(fn=cmd_callbacks)
    analyze = sub.add_parser("analyze", help="post-call analytics for stored calls that lack them (backfill)")
    analyze.add_argument("--since", help="only calls started at or after this ISO date/time")
    analyze.add_argument("--all", action="store_true", help="recompute calls that already have analytics")
    analyze.set_defaults(fn=cmd_analyze)
    dashboard = sub.add_parser("dashboard", help="the operator dashboard in the browser")
    dashboard.add_argument("--listen", help="host:port (default dashboard.listen, loopback)")
    dashboard.set_defaults(fn=cmd_dashboard)
    from agent.privacy.commands import add_commands as add_privacy_commands

    add_privacy_commands(sub)  # recording export, purge, forget
    from agent.lifecycle.commands import add_bench_options
    from agent.lifecycle.commands import add_commands as add_lifecycle_commands

    add_lifecycle_commands(sub)  # dataset export/review, train asr-lora, synth calls
    db = sub.add_parser("db", help="database tasks").add_subparsers(dest="db_command", required=True)
    db.add_parser("migrate", help="apply sql/ migrations").set_defaults(fn=cmd_db_migrate)
    kb = sub.add_parser("kb", help="knowledge base").add_subparsers(dest="kb_command", required=True)
    index = kb.add_parser("index", help="chunk and index Markdown/text files")
    index.add_argument("paths", nargs="+")
    index.add_argument("--pack", default=None, help="industry pack the documents belong to")
    index.set_defaults(fn=cmd_kb_index)
    bench = sub.add_parser("bench", help="benchmarks (latency, load, asr, turns, bargein, all) and the fault suite "
                                         "(faults)")
    bench.add_argument("what", choices=("latency", "load", "asr", "turns", "bargein", "all", "faults"))
    bench.add_argument("--calls", type=int, default=None)
    bench.add_argument("--quick", action="store_true", help="fewer calls and files")
    bench.add_argument("--minutes", type=float, default=None,
                       help="load: a soak of this length, --calls at a time, RSS sampled (configured ASR)")
    bench.add_argument("--drop-db", action="store_true",
                       help="load: drop the run's database (by default it is kept for `callagent dashboard`)")
    add_bench_options(bench)  # asr: --engine A --engine B, --dataset
    bench.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    _setup_logging(cfg.log_level, cfg.log_format)
    try:
        return args.fn(cfg, args)
    except ConfigError as exc:
        print(f"callagent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
