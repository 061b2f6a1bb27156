"""Prometheus exposition of the controller's and worker's counters; alert rules and the Grafana board."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tracemalloc
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.engines.asr import registry as asr_registry
from agent.ops.metrics import (
    ControllerCollector,
    GpuProbe,
    WorkerCollector,
    family_names,
    parse_nvidia_smi,
    serve_metrics,
)
from agent.ops.stats import SAMPLES_KEPT, ControllerStats
from agent.worker.stats import WorkerStats

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "ops" / "prometheus" / "alerts.yml"
GRAFANA = sorted((REPO / "ops" / "grafana").glob("*.json"))
NO_GPU = GpuProbe(run=lambda: None)


def _controller(stats: ControllerStats, active: int = 7):
    return SimpleNamespace(active=active, rejected=1, deps=SimpleNamespace(stats=stats))


def _scrape(stats: ControllerStats, gpu: GpuProbe = NO_GPU) -> dict[str, dict[tuple, float]]:
    text = generate_latest(serve_metrics(ControllerCollector(_controller(stats), gpu), None)).decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _call(stats: ControllerStats, call_id: str, end_reason: str, *, replies: int = 1,
          escalation_reason: str | None = None, first_audio_ms: float = 300.0, asr_ms: float = 120.0) -> None:
    """One call as the call store sees it (the same operations CallRecord submits)."""
    stats.observe({"op": "call_start", "call_id": call_id})
    stats.observe({"op": "call_start", "call_id": call_id, "answered_at": "now"})  # answered: written again
    for k in range(replies):
        stats.observe({"op": "turn", "call_id": call_id, "seq": 2 * k + 1, "speaker": "caller", "source": "asr",
                       "asr_ms": asr_ms, "eos_wait_ms": 800.0, "detail": {"asr_wait_ms": 40.0}})
        stats.observe({"op": "turn", "call_id": call_id, "seq": 2 * k + 2, "speaker": "agent", "source": "policy",
                       "eos_wait_ms": 800.0, "asr_ms": asr_ms, "dialog_ms": 900.0, "tts_ms": 80.0,
                       "first_audio_ms": first_audio_ms})
    stats.observe({"op": "turn", "call_id": call_id, "seq": 99, "speaker": "agent", "source": "prompt"})
    stats.observe({"op": "call_end", "call_id": call_id, "end_reason": end_reason,
                   "escalation_reason": escalation_reason})


def test_controller_metrics_reflect_its_counters(monkeypatch):
    stats = ControllerStats(barge_ins=3, escalations=Counter({"dtmf": 2, "worker_unavailable": 1}))
    stats.record_turn(1.5, 300.0)
    stats.record_turn(2.5, None)
    monkeypatch.setitem(asr_registry.fallbacks, "vibevoice-vllm", 4)
    m = _scrape(stats)
    assert m["callagent_calls_active"][()] == 7
    assert m["callagent_escalations_total"][(("reason", "dtmf"),)] == 2
    assert m["callagent_turn_overhead_ms_count"][()] == 2 and m["callagent_turn_overhead_ms_sum"][()] == 4.0
    assert m["callagent_turn_first_audio_ms_count"][()] == 1
    assert m["callagent_engine_fallbacks_total"][(("engine", "vibevoice-vllm"), ("kind", "asr"))] == 4


def test_calls_are_counted_by_outcome_and_latencies_land_in_threshold_buckets():
    stats = ControllerStats()
    _call(stats, "a", "agent_hangup", first_audio_ms=300.0)  # v2v 800 + 40 + 300 = 1.14 s
    _call(stats, "b", "transferred", escalation_reason="caller_requested", first_audio_ms=1500.0)  # 2.34 s
    _call(stats, "c", "caller_hangup", replies=0)
    _call(stats, "d", "caller_hangup", replies=1, asr_ms=700.0)
    _call(stats, "e", "failed", replies=0)
    m = _scrape(stats)
    assert m["callagent_calls_started_total"][()] == 5
    ended = m["callagent_calls_ended_total"]
    assert ended[(("outcome", "completed"), ("reason", "agent_hangup"))] == 1
    assert ended[(("outcome", "completed"), ("reason", "caller_hangup"))] == 1
    assert ended[(("outcome", "transferred"), ("reason", "caller_requested"))] == 1
    assert ended[(("outcome", "abandoned"), ("reason", "caller_hangup"))] == 1
    assert ended[(("outcome", "failed"), ("reason", "failed"))] == 1
    v2v = m["callagent_voice_to_voice_seconds_bucket"]
    # 3 replies: 1.14 s, 2.34 s (b), 1.14 + 0 s (d's ASR wait is the 40 ms stored, not its 700 ms)
    assert v2v[(("le", "1.0"),)] == 0 and v2v[(("le", "1.5"),)] == 2 and v2v[(("le", "2.0"),)] == 2
    assert v2v[(("le", "+Inf"),)] == 3
    asr = m["callagent_asr_seconds_bucket"]
    assert asr[(("le", "0.5"),)] == 2 and asr[(("le", "0.75"),)] == 3  # d's utterance took 700 ms
    llm = m["callagent_llm_response_seconds_bucket"]
    assert llm[(("le", "0.75"),)] == 0 and llm[(("le", "1.0"),)] == 3
    assert m["callagent_tts_first_chunk_seconds_count"][()] == 3


def test_latency_memory_is_bounded():
    """A long uptime must not grow the process: histograms are fixed, raw samples are a bounded ring."""
    stats = ControllerStats()
    for i in range(3000):
        _call(stats, f"warm-{i}", "agent_hangup")
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(30_000):
        stats.record_turn(1.0, 300.0)
        _call(stats, f"c-{i}", "agent_hangup")
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(stats.overhead_ms) <= 2 * SAMPLES_KEPT and len(stats.first_audio_ms) <= 2 * SAMPLES_KEPT
    assert not stats._open  # ended calls are forgotten
    assert grown < 2 * SAMPLES_KEPT * 2 * 40  # two rings of floats at most, not 30,000 calls' worth
    json.dumps({"overhead_ms": stats.overhead_ms})  # the bench stats file still serialises


def test_gpu_gauges_from_nvidia_smi():
    assert parse_nvidia_smi("0, 130000, 143771, 91\n1, [N/A], 100, 5\n") == [("0", 130000 / 143771, 0.91)]
    probe = GpuProbe(run=lambda: "0, 137000, 143771, 95\n")
    m = _scrape(ControllerStats(), probe)
    assert m["callagent_gpu_memory_used_ratio"][(("gpu", "0"),)] == pytest.approx(137000 / 143771)
    assert m["callagent_gpu_utilization_ratio"][(("gpu", "0"),)] == pytest.approx(0.95)


def test_worker_metrics():
    text = generate_latest(serve_metrics(WorkerCollector(lambda: {"active": 2, "frames": 500}, NO_GPU),
                                         None)).decode()
    assert "callagent_worker_active 2.0" in text and "callagent_worker_frames_total 500.0" in text


# --- alert rules and the Grafana board -----------------------------------------------------------------

_FUNCS = {"sum", "rate", "increase", "histogram_quantile", "max", "min", "avg", "avg_over_time", "count",
          "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def exported() -> set[str]:
    controller = ControllerCollector(_controller(ControllerStats()), NO_GPU)
    worker = WorkerCollector(lambda: WorkerStats().as_dict(), NO_GPU)
    return family_names(controller) | family_names(worker)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr))
    return {n for n in names if n not in _FUNCS}


def test_metric_name_parser():
    assert metric_names('sum by (le) (rate(callagent_x_bucket{le="0.5"}[5m])) / on(instance) y > 0.3') == \
        {"callagent_x_bucket", "y"}


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def _alert_exprs() -> list[str]:
    return [r["expr"] for r in _rules()]


def test_grafana_and_alerts_use_only_exported_metrics():
    assert GRAFANA, "ops/grafana/*.json missing"
    names = exported() | {r["record"] for r in _rules() if "record" in r}
    exprs = _alert_exprs()
    for path in GRAFANA:
        board = json.loads(path.read_text(encoding="utf-8"))
        exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    unknown = {(n, e) for e in exprs for n in metric_names(e) if n not in names}
    assert not unknown, f"not exported by the controller or worker: {sorted(unknown)}"
    assert len(exprs) > 20


def test_every_measurable_plan_threshold_has_an_alert():
    text = ALERTS.read_text(encoding="utf-8")
    for metric, threshold in (("callagent_asr_seconds", "> 0.5"), ("callagent_tts_first_chunk_seconds", "> 0.5"),
                              ("callagent_llm_response_seconds", "> 1"), ("callagent_voice_to_voice_seconds", "> 2"),
                              ("callagent_gpu_memory_used_ratio", "> 0.95"),
                              ("callagent_gpu_utilization_ratio", "> 0.9"), ('outcome="completed"', "< 0.7"),
                              ('outcome="transferred"', "> 0.3"), ("callagent:calls_per_gpu_hour:1h", "< ")):
        assert any(metric in e and threshold in e for e in _alert_exprs()), (metric, threshold)
    assert "WER" in text and "CSAT" in text  # the unmeasured lines say why they are missing


def test_analysed_calls_feed_cost_and_quality():
    stats = ControllerStats()
    stats.record_analytics(85.0, {"llm": 1.5, "telephony": 20.0}, 3.0)
    stats.record_analytics(45.0, {"gpu": 2.0, "telephony": 10.0}, 1.8)
    m = _scrape(stats)
    assert m["callagent_calls_analyzed_total"][()] == 2
    assert m["callagent_cost_krw_total"][(("part", "telephony"),)] == 30.0
    assert m["callagent_cost_krw_total"][(("part", "llm"),)] == 1.5 and m["callagent_gpu_seconds_total"][()] == 4.8
    q = m["callagent_call_quality_score_bucket"]
    assert q[(("le", "40.0"),)] == 0 and q[(("le", "50.0"),)] == 1 and q[(("le", "90.0"),)] == 2


@pytest.fixture
def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; `make system-packages` installs it)")
    return exe


def test_promtool_checks_the_rules(promtool):
    out = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_of_the_alert_formulas(promtool):
    out = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=ALERTS.parent, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
