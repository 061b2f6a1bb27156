"""One fault scenario's stack: worker and controller as child processes, the fork and the database behind
proxies, the simulator placing the calls on this process's thread, and the background faults (floods).
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import yaml

from agent.config import Config
from agent.ops.bench import calls as c
from agent.ops.bench.faultkit import Proxy
from agent.ops.bench.stack import BenchDatabase, Child, child_config
from agent.sim import CallLog, CallScript, FreeSwitchSim

TEXT = "배송 조회 부탁드려요"
IDLE = {"settle_ms": 300, "timeout_s": 25}
REPLY = {"wait_playback": {"timeout_s": 15}}
GREETING = {"wait_playback": {"timeout_s": 10}}
TRIGGER_TIMEOUT_S = 40.0
CALLS_TIMEOUT_S = 150.0
SAMPLE_S = 0.25
FLOOD_S = 15.0
IDLE_CONNECTIONS = 1000


class FaultDatabase(BenchDatabase):
    """The run's database; the agent reaches it through a proxy (so it can be 'stopped'), this process directly."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        params = psycopg.conninfo.conninfo_to_dict(self.server_dsn)
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
        self.user = str(params.get("user") or "postgres")
        self.target: tuple[str, int] | Path = Path(host) / f".s.PGSQL.{port}" if host.startswith("/") \
            else (host, port)

    def proxied_dsn(self, port: int) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{port}/{self.name}?connect_timeout=5"

    def records(self, call_ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT call_id, ended_at, end_reason, caller FROM calls WHERE call_id = ANY(%s)",
                                (call_ids,)).fetchall()
            events = conn.execute("SELECT call_id, count(*) AS n FROM call_events WHERE kind = 'dtmf'"
                                  " AND call_id = ANY(%s) GROUP BY call_id", (call_ids,)).fetchall()
        out = {r["call_id"]: dict(r) for r in rows}
        for e in events:
            out[e["call_id"]]["dtmf_rows"] = e["n"]
        return out

    def close(self) -> None:
        self.drop()


def scripts(name: str, n: int, *, audio_clip: Path | None, poison_first: bool, dtmf_flood: bool) -> list[CallScript]:
    turn: dict[str, Any] = {"say_audio": {"path": str(audio_clip)}} if audio_clip else {"say_text": TEXT}
    out = []
    for i in range(n):
        # The greeting first: a caller does not speak into a line that has not started talking yet.
        greeting: list[Any] = [GREETING, {"wait_idle": IDLE}]
        steps: list[Any] = [*greeting, turn, REPLY, {"wait_idle": IDLE}, "hangup"]
        if dtmf_flood and i == 0:
            steps = [*greeting, {"dtmf": "123456789" * 60}, turn, REPLY, {"wait_idle": IDLE}, "hangup"]
        variables = {"callagent_industry": "ecommerce"}
        if poison_first and i == 0:
            variables["callagent_customer"] = "김\x00철수"  # a NUL byte, as a broken CRM integration sends it
        out.append(CallScript(caller=f"0106660{i:04d}", variables=variables, steps=steps, name=f"{name}-{i}",
                              queue_s=1.0))
    return out


def scripts_after(first: CallScript) -> list[CallScript]:
    """Two more calls like `first`, placed once a fault is over: later calls must be served and stored."""
    return [CallScript(caller=f"0106661{i:04d}", variables={"callagent_industry": "ecommerce"},
                       steps=list(first.steps), name=f"{first.name}-after-{i}", queue_s=1.0) for i in range(2)]


class _NoPlaybackEvents(FreeSwitchSim):
    """A peer that plays files but never sends PLAYBACK_START / PLAYBACK_STOP."""

    def fire(self, event: Any) -> None:
        if getattr(event, "name", "") in ("PLAYBACK_START", "PLAYBACK_STOP"):
            return
        super().fire(event)


@contextlib.contextmanager
def _patched(obj: object, name: str, value: object) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def sim_patches(mode: str) -> Iterator[None]:
    """Faults of the simulated switch itself, for this process only."""
    if mode == "files_missing":
        from agent.sim import executor

        # switch_core_file_open fails for every file: FILE NOT FOUND, no PLAYBACK events (freeswitch.md §10)
        with _patched(executor, "fs_can_read", lambda *_a, **_k: False):
            yield
    elif mode == "dtmf_flood":
        from agent.sim import caller

        with _patched(caller, "DTMF_GAP_S", 0.002):
            yield
    else:
        yield


class Run:
    def __init__(self, cfg: Config, work: Path, bench: FaultDatabase, *, asr_delay_s: float,
                 llm_base: str | None):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.bench = bench
        self.fault_at: float | None = None
        self.timers: list[threading.Timer] = []
        self.extra: dict[str, Any] = {}
        self.held: list[socket.socket] = []
        self.restart_controller_later = False
        self._stop = threading.Event()
        self.db_proxy = Proxy(bench.target)
        config = child_config(cfg, work, bench.proxied_dsn(self.db_proxy.port), asr_engine="fake",
                              asr_options={"text": TEXT, "delay_s": asr_delay_s}, allow_injection=True,
                              max_calls=50)
        config["log_level"] = "WARNING"
        if llm_base is not None:
            config["dialog"] = {**config["dialog"], "policy": "llm",
                                "llm": {"model": "openai/fault-suite", "api_base": llm_base}}
        self.config_path = work / "callagent.yaml"
        self.config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.clip = c.render_speech(TEXT, work / "caller.wav")
        for stale in work.glob("*.ready.json"):  # a ready file from an earlier run would give its old port
            stale.unlink()
        self.worker = Child("worker", self.config_path, work, [], None)
        self.worker_port = int(self.worker.wait_ready()["port"])
        self.fork_proxy = Proxy(("127.0.0.1", self.worker_port))
        self.controller = self._start_controller()
        self.peak = {"worker_rss_mib": 0.0, "worker_fds": 0}
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _start_controller(self) -> Child:
        (self.work / "controller.ready.json").unlink(missing_ok=True)
        child = Child("controller", self.config_path, self.work,
                      ["--fork-url", f"ws://127.0.0.1:{self.fork_proxy.port}"], None)
        child.wait_ready()
        return child

    @property
    def addr(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.controller.ready["port"])

    def _sample(self) -> None:
        proc = self.worker.proc
        while not self._stop.wait(SAMPLE_S):
            with contextlib.suppress(psutil.Error):
                self.peak["worker_rss_mib"] = max(self.peak["worker_rss_mib"], proc.memory_info().rss / 2**20)
                self.peak["worker_fds"] = max(self.peak["worker_fds"], proc.num_fds())

    def place(self, calls: list[CallScript], fault: Callable[[Run], None] | None, *, trigger: str,
              sim_mode: str) -> list[CallLog]:
        sim_cls = _NoPlaybackEvents if sim_mode == "no_playback_events" else FreeSwitchSim
        sim = sim_cls(self.addr, speed=1.0, narrowband=True, temp_dir=self.work / "sim")
        box: dict[str, Any] = {}

        def calls_thread() -> None:
            try:
                box["logs"] = sim.run_calls(calls, stagger_s=0.3)
            except BaseException as exc:  # reported below, in the caller's thread
                box["error"] = exc

        with sim_patches(sim_mode):
            if sim_mode != "normal":
                self.fault_at = time.monotonic()  # the switch misbehaves from the first call on
            th = threading.Thread(target=calls_thread, name="fault-sim", daemon=True)
            th.start()
            if fault is not None:
                if trigger != "start":
                    self._wait_first_utterance(sim)
                self.fault_at = time.monotonic()
                fault(self)
            th.join(CALLS_TIMEOUT_S)
        for timer in self.timers:  # an outage outlasting the calls: the agent must catch up once it ends
            timer.join()
        if self.timers and "logs" in box:
            box["logs"] += sim.run_calls(scripts_after(calls[0]))
        if self.restart_controller_later:
            self.controller = self._start_controller()  # reconciles the calls the killed one left open
        if "error" in box:
            raise box["error"]
        if "logs" not in box:
            raise TimeoutError(f"calls did not finish within {CALLS_TIMEOUT_S:g} s")
        self.extra.update({k: round(v, 1) if isinstance(v, float) else v for k, v in self.peak.items()})
        return box["logs"]

    @staticmethod
    def _wait_first_utterance(sim: FreeSwitchSim) -> None:
        deadline = time.monotonic() + TRIGGER_TIMEOUT_S
        while time.monotonic() < deadline:
            for ch in list(sim.channels.values()):
                if any(u.t_last_voiced is not None for u in ch.log.utterances):
                    return
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for t in self.timers:
            t.cancel()
        with contextlib.suppress(psutil.Error):
            self.worker.proc.resume()  # a scenario may have left it stopped
        self.db_proxy.set_mode("pass")
        self.db_proxy.thaw()
        stats = self.controller.stop()
        self.extra["store"] = stats.get("store")
        self.extra["controller_active_at_stop"] = stats.get("active")
        self.worker.stop()
        for s in self.held:
            s.close()
        self.fork_proxy.close()
        self.db_proxy.close()


def frame_flood(run: Run) -> None:
    """A client that sends 1 MiB binary frames to the worker for FLOOD_S, reconnecting whenever it is closed."""
    from websockets.sync.client import connect

    def flood() -> None:
        end, sent, closes = time.monotonic() + FLOOD_S, 0, 0
        frame = bytes(1 << 20)
        while time.monotonic() < end and not run._stop.is_set():
            try:
                with connect(f"ws://127.0.0.1:{run.worker_port}/flood", max_size=None, open_timeout=5) as ws:
                    ws.send('{"call_id": "flood", "rate": 16000}')
                    while time.monotonic() < end:
                        ws.send(frame)
                        sent += 1
            except Exception:  # noqa: BLE001 - the worker closing us is the point
                closes += 1
                time.sleep(0.01)
        run.extra.update(flood_frames_sent=sent, flood_closed=closes)

    threading.Thread(target=flood, name="frame-flood", daemon=True).start()


def idle_connections(run: Run) -> None:
    """IDLE_CONNECTIONS TCP connections to the worker that never say anything."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_CONNECTIONS * 4), hard))
    opened = 0
    for _ in range(IDLE_CONNECTIONS):
        try:
            run.held.append(socket.create_connection(("127.0.0.1", run.worker_port), timeout=5))
            opened += 1
        except OSError:
            break
    run.extra["idle_opened"] = opened
