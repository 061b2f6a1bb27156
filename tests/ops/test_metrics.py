"""Prometheus exposition of the controller's and worker's counters."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from prometheus_client import generate_latest

from agent.engines.asr import registry as asr_registry
from agent.ops.metrics import ControllerCollector, WorkerCollector, serve_metrics
from agent.ops.stats import ControllerStats


def test_controller_metrics_reflect_its_counters(monkeypatch):
    stats = ControllerStats(barge_ins=3, escalations=Counter({"dtmf": 2, "worker_unavailable": 1}))
    stats.record_turn(1.5, 300.0)
    stats.record_turn(2.5, None)
    controller = SimpleNamespace(active=7, rejected=1, deps=SimpleNamespace(stats=stats))
    monkeypatch.setitem(asr_registry.fallbacks, "vibevoice-vllm", 4)
    text = generate_latest(serve_metrics(ControllerCollector(controller), None)).decode()
    assert "callagent_calls_active 7.0" in text
    assert 'callagent_escalations_total{reason="dtmf"} 2.0' in text
    assert "callagent_turn_overhead_ms_count 2.0" in text and "callagent_turn_overhead_ms_sum 4.0" in text
    assert 'callagent_engine_fallbacks_total{engine="vibevoice-vllm",kind="asr"} 4.0' in text


def test_worker_metrics():
    text = generate_latest(serve_metrics(WorkerCollector(lambda: {"active": 2, "frames": 500}), None)).decode()
    assert "callagent_worker_active 2.0" in text and "callagent_worker_frames_total 500.0" in text
