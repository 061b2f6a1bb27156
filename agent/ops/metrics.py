"""Prometheus metrics, read from the counters the controller and worker already keep (no second bookkeeping).

A collector turns those counters into metric families at scrape time; `serve_metrics` exposes them on
`<host>:<port>/metrics` when `controller.metrics_listen` / `worker.metrics_listen` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Worker counters that only grow; everything else in WorkerStats is a gauge.
_WORKER_GAUGES = ("active",)


def _fallbacks() -> Iterator[CounterMetricFamily]:
    from agent.engines.asr.registry import fallbacks as asr_fallbacks
    from agent.engines.tts.registry import FALLBACK_COUNTS as tts_fallbacks

    family = CounterMetricFamily("callagent_engine_fallbacks", "Engines that could not start and were replaced",
                                 labels=("kind", "engine"))
    for kind, counts in (("asr", asr_fallbacks), ("tts", tts_fallbacks)):
        for engine, n in counts.items():
            family.add_metric((kind, engine), n)
    yield family


class ControllerCollector(Collector):
    def __init__(self, controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator:
        c, stats = self.controller, self.controller.deps.stats
        yield GaugeMetricFamily("callagent_calls_active", "Calls the controller is handling", value=c.active)
        yield CounterMetricFamily("callagent_calls_rejected", "Calls returned to the dialplan at capacity",
                                  value=c.rejected)
        yield CounterMetricFamily("callagent_turns", "Agent turns answered", value=stats.turns)
        yield CounterMetricFamily("callagent_barge_ins", "Replies cut by the caller", value=stats.barge_ins)
        escalations = CounterMetricFamily("callagent_escalations", "Hand-offs to humans", labels=("reason",))
        for reason, n in stats.escalations.items():
            escalations.add_metric((reason,), n)
        yield escalations
        for name, values in (("overhead_ms", stats.overhead_ms), ("first_audio_ms", stats.first_audio_ms)):
            yield SummaryMetricFamily(f"callagent_turn_{name}", f"Per-turn {name.replace('_', ' ')}",
                                      count_value=len(values), sum_value=sum(values))
        yield from _fallbacks()


class WorkerCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, float]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator:
        for key, value in self.stats().items():
            family = GaugeMetricFamily if key in _WORKER_GAUGES else CounterMetricFamily
            yield family(f"callagent_worker_{key}", f"Speech worker {key.replace('_', ' ')}", value=value)
        yield from _fallbacks()


def serve_metrics(collector: Collector, listen: tuple[str, int] | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    if listen is not None:
        start_http_server(listen[1], addr=listen[0], registry=registry)
        log.info("metrics on http://%s:%d/metrics", *listen)
    return registry
