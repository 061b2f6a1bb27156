"""The GPU timing script, checked on CPU: a tiny ASR config, and the TTS path over the Realtime stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers.models.vibevoice_asr", reason="needs transformers>=5.3")

from agent.engines.vibevoice_timing import main  # noqa: E402


def test_asr_rows_for_each_duration_and_batch(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    rows = main(["--device", "cpu", "--tiny", "--durations", "1,2", "--batches", "1,2", "--new-tokens", "3",
                 "--repeats", "1", "--out", str(out)])
    assert [(r["audio_s"], r["batch"]) for r in rows] == [(1.0, 1), (1.0, 2), (2.0, 1), (2.0, 2)]
    assert all(r["total_ms"] > 0 and r["first_token_ms"] > 0 for r in rows)
    assert json.loads(out.read_text()) == rows


def test_tts_first_chunk_and_rtf(standin, setup) -> None:
    standin.CHUNK_DELAY_S = 0.01
    rows = main(["--device", "cpu", "--skip-asr", "--tts-model-path", setup["model_path"],
                 "--voices-dir", setup["voices_dir"], "--tts-chunks", "10"])
    (row,) = rows
    assert row["audio_s"] == pytest.approx(10 * 3200 / 24000, abs=0.01)
    assert 0 < row["first_chunk_ms"] < 1000 and row["rtf"] > 0


def test_cuda_is_required_unless_cpu_is_asked_for() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit):
        main(["--skip-asr"])
