"""A simulated call through the real controller, worker and PostgreSQL: at its end the analytics row is written
and `/metrics` counts the call and its reply latencies, from the same records."""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.analytics.runner import instrument
from agent.ops.metrics import ControllerCollector, GpuProbe, serve_metrics
from agent.sim import CallScript
from tests.call.harness import make_stack

SPEED = 3.0


def test_a_simulated_call_is_analysed_at_its_end_and_counted(tmp_path, db):
    stack = make_stack(tmp_path, db)
    runner = instrument(stack.deps, db, stack.cfg)
    try:
        script = CallScript(variables={"callagent_industry": "ecommerce"}, steps=[
            {"wait_idle": {}},
            {"sleep": 1.0},  # the fork may connect after the greeting; a typed-in turn needs it
            {"say_text": "배송 조회 부탁드려요"},
            {"wait_playback": {}},
            {"wait_idle": {"settle_ms": 1500}},  # the whole answer (a filler may come first) before the next turn
            {"say_text": "상담원 연결해 주세요"},
            {"expect_transfer": {"timeout_s": 20}},
        ])
        (log,) = stack.sim(speed=SPEED).run_calls([script])
        assert not log.errors, log.errors
        assert not [n for n in log.notes if "dropped" in n], log.notes
        deadline = time.monotonic() + 30  # bounds a hang; the analysis itself takes milliseconds
        while runner.stats["analyzed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        text = generate_latest(serve_metrics(ControllerCollector(stack.controller.controller,
                                                                 GpuProbe(run=lambda: None)), None)).decode()
    finally:
        runner.close()
        stack.stop()
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM call_analytics WHERE call_id = %s", (log.uuid,)).fetchone()
        replies = conn.execute("SELECT count(*) AS n FROM turns WHERE call_id = %s AND source = 'policy'"
                               " AND first_audio_ms IS NOT NULL", (log.uuid,)).fetchone()["n"]
    assert row is not None, runner.stats
    assert (row["resolution"], row["resolution_reason"]) == ("transferred", "caller_requested")
    assert replies >= 1 and len(row["gaps_ms"]) == replies
    assert all(0 < g < 10_000 for g in row["gaps_ms"]), row["gaps_ms"]
    assert "delivery" in row["intents"] and row["caller_speech_s"] > 0 and row["agent_speech_s"] > 0

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("callagent_calls_started_total", ())] == 1
    assert samples[("callagent_calls_ended_total", (("outcome", "transferred"), ("reason", "caller_requested")))] == 1
    assert samples[("callagent_voice_to_voice_seconds_count", ())] == replies
    assert samples[("callagent_voice_to_voice_seconds_sum", ())] * 1000 == \
        pytest.approx(sum(row["gaps_ms"]), rel=1e-3)
    assert samples[("callagent_calls_analyzed_total", ())] == 1

