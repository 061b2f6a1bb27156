"""The agent under test as two child processes (controller, worker) on loopback, a fresh database for the run,
and a sampler that reads their CPU time and memory with psutil, so the simulator's own cost is never counted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import yaml

from agent.config import ENV_CONFIG, ENV_DB_DSN, Config
from agent.store.db import Database, resolve_dsn

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SAMPLE_EVERY_S = 0.25
LOG_TAIL_LINES = 20


class BenchDatabase:
    """`CREATE DATABASE bench_<time>_<id>` on the configured (or embedded) server, migrated; dropped by `drop`."""

    def __init__(self, cfg: Config):
        self.server_dsn = resolve_dsn(cfg)
        self.name = f"bench_{datetime.now():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}")
        params = psycopg.conninfo.conninfo_to_dict(self.server_dsn)
        params.pop("dbname", None)
        # dbname first: the config accepts key=value DSNs that start with host= or dbname=.
        self.dsn = psycopg.conninfo.make_conninfo(dbname=self.name, **params)
        self.db = Database(self.dsn)
        try:
            self.db.migrate()
        except BaseException:
            self.drop()
            raise

    def turns(self) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM turns ORDER BY call_id, seq").fetchall()

    def drop(self) -> None:
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def dashboard_command(self) -> str:
        """The command that shows this database's calls: `callagent dashboard` reads $CALLAGENT_DB_DSN first."""
        return f"{ENV_DB_DSN}={shlex.quote(_no_password(self.dsn))} callagent dashboard"

    def drop_command(self) -> str:
        return f"psql {shlex.quote(_no_password(self.server_dsn))} -c 'DROP DATABASE {self.name}'"


def _no_password(dsn: str) -> str:
    """A DSN fit to print: a password is left to $PGPASSWORD or ~/.pgpass, never written out."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params.pop("password", None)
    dbname = params.pop("dbname", None)
    # dbname first: the config accepts key=value DSNs that start with host= or dbname=.
    return psycopg.conninfo.make_conninfo(**({"dbname": dbname} if dbname else {}), **params)


def child_config(cfg: Config, work_dir: Path, dsn: str, *, asr_engine: str,
                 asr_options: Mapping[str, Any], allow_injection: bool, max_calls: int) -> dict[str, Any]:
    """The YAML the children load: the user's settings, with the benchmark's engine, database and paths."""
    def plain(obj: Any) -> Any:
        return {k: plain(v) for k, v in dataclasses.asdict(obj).items()} if dataclasses.is_dataclass(obj) else obj

    controller = plain(cfg.controller)
    controller["listen"] = "127.0.0.1:9"  # placeholder: the child listens on port 0
    controller["max_calls"] = max(cfg.controller.max_calls, max_calls)
    w = cfg.worker
    return {
        "log_level": "WARNING",
        "controller": controller,
        "worker": {
            "listen": "127.0.0.1:9", "vad": plain(w.vad), "allow_text_injection": allow_injection,
            "hotwords_dir": str(cfg.path(w.hotwords_dir).resolve()),
            "asr": {"engine": asr_engine, "timeout_s": w.asr_timeout_s,
                    "engines": {**{k: dict(v) for k, v in w.asr_options.items()}, asr_engine: dict(asr_options)}},
        },
        "tts": {
            "engine": cfg.tts.engine, "voice": cfg.tts.voice, "max_chunk_chars": cfg.tts.max_chunk_chars,
            "worker_url": cfg.tts.worker_url, "engines": {k: dict(v) for k, v in cfg.tts.options.items()},
            "spool_dir": str(work_dir / "spool"),
            # The user's prompt cache: a deployment keeps it across restarts, so the greeting is usually warm.
            "cache_dir": str(cfg.path(cfg.tts.cache_dir).resolve()),
        },
        "store": {"dsn": dsn, "spool_dir": str(work_dir / "db-spool")},
        "dialog": dict(cfg.dialog),
        # Prices and analysis settings: each benchmark call is analysed and costed as `callagent run` would.
        "analytics": _plain_mapping(cfg.analytics),
    }


def _plain_mapping(value: Any) -> Any:
    """Nested read-only mappings as plain dicts, so YAML can write them."""
    if isinstance(value, Mapping):
        return {str(k): _plain_mapping(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_mapping(v) for v in value]
    return value


@dataclasses.dataclass
class Sample:
    cpu_s: float            # the process's own user + system time
    children_cpu_s: float   # exited children it waited for (espeak-ng runs of the controller)
    rss: int


def busy_cpu_s() -> dict[str, float]:
    """Busy CPU seconds so far: per core, the whole machine, and this (the simulator's) process."""
    per_core = [t.user + t.nice + t.system + t.irq + t.softirq + t.steal for t in psutil.cpu_times(percpu=True)]
    own = psutil.Process().cpu_times()
    return {"machine": sum(per_core), "bench": own.user + own.system,
            **{f"core{i}": v for i, v in enumerate(per_core)}}


def other_cpu_share(before: dict[str, float], after: dict[str, float], agent_s: float, wall_s: float) -> float | None:
    """Share of one core used by everything but the agent and the simulator (PostgreSQL, other programs)."""
    if wall_s <= 0:
        return None
    other = (after["machine"] - before["machine"]) - (after["bench"] - before["bench"]) - agent_s
    return max(0.0, other) / wall_s


class Child:
    """One agent process started with `python -m agent.ops.bench.procs`."""

    def __init__(self, role: str, config: Path, work_dir: Path, extra: list[str], core: int | None,
                 census_every_s: float | None = None):
        self.role = role
        self.ready_path = work_dir / f"{role}.ready.json"
        self.stats_path = work_dir / f"{role}.stats.json"
        self.log_path = work_dir / f"{role}.log"
        self.census_path = work_dir / f"{role}.census.jsonl"
        if census_every_s:
            extra = [*extra, "--census", str(self.census_path), "--census-every", str(census_every_s)]
        env = {k: v for k, v in os.environ.items() if k not in (ENV_DB_DSN, ENV_CONFIG)}
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "agent.ops.bench.procs", role, "--config", str(config),
                 "--ready", str(self.ready_path), "--stats", str(self.stats_path), *extra],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        if core is not None:
            os.sched_setaffinity(self.popen.pid, {core})  # espeak-ng children inherit it
        self.proc = psutil.Process(self.popen.pid)
        self.ready: dict[str, Any] = {}

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not self.ready_path.exists():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"benchmark {self.role} did not start:\n{tail}")
            time.sleep(0.05)
        self.ready = json.loads(self.ready_path.read_text(encoding="utf-8"))
        return self.ready

    def sample(self) -> Sample:
        t = self.proc.cpu_times()
        return Sample(t.user + t.system, t.children_user + t.children_system, self.proc.memory_info().rss)

    def stop(self) -> dict[str, Any]:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        # Its warnings and errors (the children log at WARNING), so a failed level can be explained from the JSON.
        tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if not self.stats_path.exists():
            return {"error": f"{self.role} wrote no stats (exit {self.popen.returncode})", "log_tail": tail}
        return {**json.loads(self.stats_path.read_text(encoding="utf-8")), "log_tail": tail}

    def census(self) -> list[dict[str, Any]]:
        """The object counts the child wrote (empty unless started with census_every_s)."""
        if not self.census_path.exists():
            return []
        lines = self.census_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class AgentStack:
    """Worker first (the controller needs its URL), then the controller; `core` pins both to one CPU."""

    def __init__(self, cfg: Config, work_dir: Path, dsn: str, *, asr_engine: str,
                 asr_options: Mapping[str, Any] | None = None, allow_injection: bool = False,
                 max_calls: int = 200, core: int | None = None, census_every_s: float | None = None):
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        config = work_dir / "callagent.yaml"
        config.write_text(yaml.safe_dump(child_config(
            cfg, work_dir, dsn, asr_engine=asr_engine, asr_options=asr_options or {},
            allow_injection=allow_injection, max_calls=max_calls), allow_unicode=True), encoding="utf-8")
        self.worker = Child("worker", config, work_dir, [], core, census_every_s)
        try:
            port = self.worker.wait_ready()["port"]
            self.controller = Child("controller", config, work_dir, ["--fork-url", f"ws://127.0.0.1:{port}"], core,
                                    census_every_s)
            self.controller.wait_ready()
        except BaseException:
            self.worker.stop()
            raise
        self.peak_rss = {"controller": 0, "worker": 0}
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def addr(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.controller.ready["port"])

    def children(self) -> dict[str, Child]:
        return {"controller": self.controller, "worker": self.worker}

    def snapshot(self) -> dict[str, Sample]:
        return {name: child.sample() for name, child in self.children().items()}

    def start_sampling(self) -> None:
        """Tracks peak RSS while calls run (CPU is read as a difference of two snapshots)."""
        self.peak_rss = {name: s.rss for name, s in self.snapshot().items()}
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample_loop, name="bench-sampler", daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            try:
                for name, s in self.snapshot().items():
                    self.peak_rss[name] = max(self.peak_rss[name], s.rss)
            except psutil.Error:
                return

    def stop(self) -> dict[str, Any]:
        """Stops both children (controller first, so calls end before their audio source) and returns their stats."""
        self.stop_sampling()
        return {"controller": self.controller.stop(), "worker": self.worker.stop()}
