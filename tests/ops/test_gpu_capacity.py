"""The GPU capacity script: its batching simulation, and the whole script on a CPU (`--dry-run`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent.ops.gpu_capacity import arrivals, asr_capacity, interpolate, main, quantile, simulate_batching

REPO = Path(__file__).resolve().parents[2]


def test_batching_server_serves_waiting_requests_together():
    service = interpolate({1: 100.0, 4: 160.0})
    assert service(1) == 100 and service(2) == 120 and service(8) == 240
    # t=0 alone (100 ms); t=0.05 and 0.06 wait for it, then go together (120 ms): done at 0.22 s.
    lat = simulate_batching([0.0, 0.05, 0.06, 1.0], service, max_batch=8)
    assert [round(x) for x in lat] == [100, 170, 160, 100]
    # max_batch 1: strictly one after another.
    assert [round(x) for x in simulate_batching([0.0, 0.0, 0.0], service, 1)] == [100, 200, 300]


def test_capacity_is_the_largest_level_under_the_threshold():
    times = arrivals(10, period_s=8.0, window_s=80.0, seed=1)
    assert times == sorted(times) and 90 <= len(times) <= 120 and all(0 <= t < 80 for t in times)
    carried, rows = asr_capacity({1: 200.0, 8: 400.0, 64: 3000.0}, [4, 16, 64, 256], period_s=8.0,
                                 window_s=120.0, max_batch=64)
    assert [r["calls"] for r in rows] == [4, 16, 64, 256]
    p95 = [r["p95_ms"] for r in rows]
    assert p95 == sorted(p95)  # more calls never wait less
    assert carried == max(r["calls"] for r in rows if r["p95_ms"] <= 500) and 4 <= carried < 256
    assert quantile([1, 2, 3, 4, 100]) == 100 and quantile([5.0]) == 5.0


@pytest.mark.slow
def test_dry_run_on_cpu_reports_per_gpu(tmp_path, capsys):
    pytest.importorskip("transformers.models.vibevoice_asr", reason="needs transformers>=5.3")
    out = tmp_path / "capacity.json"
    report = main(["--dry-run", "--out", str(out)])
    assert report.dry_run and report.gpu == "cpu"
    assert report.asr["weights"] == "random initialisation (tiny config)" and report.asr["params"] > 0
    assert set(report.asr["batch_ms"]) == {1, 2} and all(ms > 0 for ms in report.asr["batch_ms"].values())
    assert [r["calls"] for r in report.asr["levels"]] == [1, 2, 4]
    assert "skipped" in report.tts
    saved = json.loads(out.read_text())
    assert saved["asr"]["calls_carried"] == report.asr["calls_carried"]
    text = capsys.readouterr().out
    assert "dry run" in text and "calls** per GPU at p95" in text


def test_tts_streams_through_the_realtime_engine(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(REPO / "tests" / "engines" / "vibevoice"))
    import vv_standin

    monkeypatch.syspath_prepend(str(vv_standin.install(tmp_path / "site")))
    try:
        import vibevoice.modular.modeling_vibevoice_streaming_inference as model_module

        model_module.CHUNK_DELAY_S = 0.005
        setup = vv_standin.write_model_dir(tmp_path / "models")
        from agent.ops.gpu_capacity import measure_tts

        tts = measure_tts(setup["model_path"], setup["voices_dir"], "kr-Spk0_woman", "cpu", [1, 2], chunks=3,
                          talk_share=0.5, text="안녕하세요")
    finally:
        vv_standin.unload()
        sys.modules.pop("vv_standin", None)
    assert [r["streams"] for r in tts["levels"]] == [1, 2]
    assert all(r["first_chunk_p95_ms"] > 0 and r["worst_rtf"] > 0 for r in tts["levels"])
    assert tts["calls_carried"] == int(tts["streams_carried"] / 0.5)
