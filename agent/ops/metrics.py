"""Prometheus metrics, read from the counters the controller and worker already keep (no second bookkeeping).

A collector turns those counters into metric families at scrape time; `serve_metrics` exposes them on
`<host>:<port>/metrics` when `controller.metrics_listen` / `worker.metrics_listen` is set. Latencies are
histograms whose buckets sit on the monitoring thresholds (ops/prometheus/alerts.yml reads them).
Every family name a collector can yield is listed in `CONTROLLER_FAMILIES` / `WORKER_FAMILIES`, so the Grafana
board and the alert rules can be checked against what the code exports.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agent.ops.stats import COST_PARTS, HISTOGRAMS, OUTCOMES, ControllerStats

log = logging.getLogger(__name__)

# Worker counters that only grow; everything else in WorkerStats is a gauge.
_WORKER_GAUGES = ("active",)
GPU_CACHE_S = 5.0  # nvidia-smi takes ~50 ms; scrapes come every 15 s or so
NVIDIA_SMI_TIMEOUT_S = 3.0


def _fallbacks() -> Iterator[Metric]:
    from agent.engines.asr.registry import fallbacks as asr_fallbacks
    from agent.engines.tts.registry import FALLBACK_COUNTS as tts_fallbacks

    family = CounterMetricFamily("callagent_engine_fallbacks", "Engines that could not start and were replaced",
                                 labels=("kind", "engine"))
    for kind, counts in (("asr", asr_fallbacks), ("tts", tts_fallbacks)):
        for engine, n in counts.items():
            family.add_metric((kind, engine), n)
    yield family


def _breakers() -> Iterator[Metric]:
    from agent.engines.breaker import BREAKERS, HALF_OPEN, OPEN

    state = GaugeMetricFamily("callagent_engine_breaker_state", "Circuit breaker per engine and LLM endpoint: "
                              "0 closed, 1 half-open, 2 open (calls on the fallback)", labels=("engine",))
    opened = CounterMetricFamily("callagent_engine_breaker_opened", "Times a circuit breaker opened",
                                 labels=("engine",))
    for name, breaker in sorted(BREAKERS.items()):
        state.add_metric((name,), {OPEN: 2, HALF_OPEN: 1}.get(breaker.state, 0))
        opened.add_metric((name,), breaker.opened)
    yield state
    yield opened


def _llm_tokens() -> Iterator[Metric]:
    from agent.dialog.llm import TOKEN_COUNTS

    family = CounterMetricFamily("callagent_llm_tokens", "LLM tokens reported by the provider (stream usage)",
                                 labels=("model", "kind"))
    for (model, kind), n in sorted(TOKEN_COUNTS.items()):
        family.add_metric((model, kind), n)
    yield family


class GpuProbe:
    """GPU memory and utilisation from nvidia-smi, cached; no samples on a host without a GPU."""

    def __init__(self, run: Callable[[], str | None] | None = None, clock: Callable[[], float] = time.monotonic):
        self._run = run or _nvidia_smi
        self._clock = clock
        self._lock = threading.Lock()
        self._at = -GPU_CACHE_S
        self._rows: list[tuple[str, float, float]] = []

    def rows(self) -> list[tuple[str, float, float]]:
        """(gpu index, memory used ratio, utilisation ratio) per GPU."""
        with self._lock:
            now = self._clock()
            if now - self._at >= GPU_CACHE_S:
                self._at = now
                self._rows = parse_nvidia_smi(self._run() or "")
            return list(self._rows)

    def collect(self) -> Iterator[Metric]:
        memory = GaugeMetricFamily("callagent_gpu_memory_used_ratio", "GPU memory used / total (0..1)",
                                   labels=("gpu",))
        util = GaugeMetricFamily("callagent_gpu_utilization_ratio", "GPU busy share (0..1)", labels=("gpu",))
        for gpu, mem, busy in self.rows():
            memory.add_metric((gpu,), mem)
            util.add_metric((gpu,), busy)
        yield memory
        yield util


def _nvidia_smi() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        return subprocess.run([exe, "--query-gpu=index,memory.used,memory.total,utilization.gpu",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        log.debug("nvidia-smi failed", exc_info=True)
        return None


def parse_nvidia_smi(text: str) -> list[tuple[str, float, float]]:
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            index, used, total, busy = parts[0], float(parts[1]), float(parts[2]), float(parts[3])
        except ValueError:
            continue  # "[N/A]" on some virtualised GPUs
        if total > 0:
            rows.append((index, used / total, busy / 100))
    return rows


_GPU = GpuProbe()


def _histogram(stats: ControllerStats, name: str) -> HistogramMetricFamily:
    helptext, _ = HISTOGRAMS[name]
    h = stats.histograms[name]
    return HistogramMetricFamily(f"callagent_{name}", helptext, buckets=h.buckets(), sum_value=h.sum)


class ControllerCollector(Collector):
    def __init__(self, controller, gpu: GpuProbe | None = None) -> None:
        self.controller = controller
        self.gpu = gpu or _GPU

    def collect(self) -> Iterator[Metric]:
        c, stats = self.controller, self.controller.deps.stats
        yield GaugeMetricFamily("callagent_calls_active", "Calls the controller is handling", value=c.active)
        yield CounterMetricFamily("callagent_calls_rejected", "Calls returned to the dialplan at capacity",
                                  value=c.rejected)
        yield CounterMetricFamily("callagent_calls_started", "Calls whose record was started",
                                  value=stats.calls_started)
        ended = CounterMetricFamily("callagent_calls_ended", "Calls ended, by outcome (completed, transferred, "
                                    "abandoned, failed) and reason", labels=("outcome", "reason"))
        for outcome in OUTCOMES:  # every outcome present, so rate() ratios have a denominator from the start
            if not any(o == outcome for o, _ in stats.calls_ended):
                ended.add_metric((outcome, ""), 0)
        for (outcome, reason), n in sorted(stats.calls_ended.items()):
            ended.add_metric((outcome, reason), n)
        yield ended
        yield CounterMetricFamily("callagent_turns", "Agent turns answered", value=stats.turns)
        yield CounterMetricFamily("callagent_barge_ins", "Replies cut by the caller", value=stats.barge_ins)
        escalations = CounterMetricFamily("callagent_escalations", "Hand-offs to humans", labels=("reason",))
        for reason, n in stats.escalations.items():
            escalations.add_metric((reason,), n)
        yield escalations
        for name in HISTOGRAMS:
            yield _histogram(stats, name)
        yield CounterMetricFamily("callagent_calls_analyzed", "Calls whose post-call analytics were computed",
                                  value=stats.calls_analyzed)
        cost = CounterMetricFamily("callagent_cost_krw", "Estimated cost of analysed calls in won, by part",
                                   labels=("part",))
        for part in COST_PARTS:
            cost.add_metric((part,), stats.cost_krw[part])
        yield cost
        yield CounterMetricFamily("callagent_gpu_seconds", "GPU busy seconds of analysed calls (ASR + TTS)",
                                  value=stats.gpu_seconds)
        yield from _llm_tokens()
        yield from self.gpu.collect()
        yield from _fallbacks()
        yield from _breakers()


class WorkerCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, float]], gpu: GpuProbe | None = None) -> None:
        self.stats = stats
        self.gpu = gpu or _GPU

    def collect(self) -> Iterator[Metric]:
        for key, value in self.stats().items():
            family = GaugeMetricFamily if key in _WORKER_GAUGES else CounterMetricFamily
            yield family(f"callagent_worker_{key}", f"Speech worker {key.replace('_', ' ')}", value=value)
        yield from self.gpu.collect()
        yield from _fallbacks()
        yield from _breakers()


def family_names(collector: Collector) -> set[str]:
    """Every sample name a scrape of `collector` can show (histograms: _bucket/_sum/_count; counters: _total)."""
    names: set[str] = set()
    for family in collector.collect():
        if family.type == "counter":
            names.update({family.name + "_total", family.name + "_created"})
        elif family.type == "histogram":
            names.update({family.name + s for s in ("_bucket", "_sum", "_count", "_created")})
        else:
            names.add(family.name)
    return names


def serve_metrics(collector: Collector, listen: tuple[str, int] | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    if listen is not None:
        start_http_server(listen[1], addr=listen[0], registry=registry)
        log.info("metrics on http://%s:%d/metrics", *listen)
    return registry
