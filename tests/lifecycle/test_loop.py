"""The whole loop through the command line, on CPU with the tiny random checkpoint: recorded calls (sealed
stereo WAVs, turns in PostgreSQL) → `dataset review` → `dataset export` → `train asr-lora` → the adapter loads
in the vibevoice-transformers engine → `bench asr --engine base --engine tuned --dataset` compares both on the
exported dev set."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from psycopg.conninfo import conninfo_to_dict
from recorded import Said, record_call

from agent.lifecycle.dataset import split_of
from agent.ops.cli import main
from agent.privacy.keys import Keyring
from agent.store.calls import CallStore

KEY = bytes(range(100, 132))
LINES = ["주문한 물건이 아직 안 왔어요", "배송 조회 부탁드립니다", "환불은 언제 되나요", "네 감사합니다"]


@pytest.fixture
def cli_config(db, tmp_path: Path, tiny_asr: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: ANN001
    parts = conninfo_to_dict(db.dsn)  # the config takes a key=value DSN that starts with dbname=
    monkeypatch.setenv("CALLAGENT_DB_DSN", " ".join(f"{k}={v}" for k, v in
                                                    sorted(parts.items(), key=lambda kv: kv[0] != "dbname")))
    monkeypatch.setenv("TEST_REC_KEY", base64.b64encode(KEY).decode())
    cfg = tmp_path / "callagent.yaml"
    cfg.write_text(
        f"controller:\n  recording_dir: {tmp_path / 'rec'}\nprivacy:\n  recording_key_env: TEST_REC_KEY\n"
        "worker:\n  asr:\n    engines:\n      vibevoice-transformers:\n"
        f"        model_path: {tiny_asr}\n        device: cpu\n        max_new_tokens: 24\n        gather_ms: 0\n",
        encoding="utf-8")
    return cfg


def test_recorded_calls_to_a_compared_adapter(db, cli_config: Path, tmp_path: Path, tiny_asr: Path,  # noqa: ANN001
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Calls whose ids fall in train and in dev (the split is a hash of the id: fixed for these ids).
    ids = [f"sim-call-{i}" for i in range(6)]
    splits = {c: split_of(c, dev=0.5, test=0.0) for c in ids}
    assert set(splits.values()) == {"train", "dev"}
    store = CallStore(db, tmp_path / "spool")
    rng = np.random.default_rng(3)
    for n, cid in enumerate(ids):
        said = [Said(LINES[(n + k) % 4], 0.4 + 1.6 * k, 1.4 + 1.6 * k) for k in range(2)]
        speech = [(rng.standard_normal(8000) * 2500).astype(np.int16) for _ in said]  # 1 s of "speech" each
        record_call(db, store, Keyring.of(KEY), tmp_path / "rec", cid, said, speech=speech)
    store.close()

    assert main(["--config", str(cli_config), "dataset", "review", ids[0], "2", "주문한 물건이 아직 안 왔어요."]) == 0
    data = tmp_path / "ds"
    assert main(["--config", str(cli_config), "dataset", "export", "--out", str(data), "--dev", "0.5",
                 "--test", "0"]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    n_dev = 2 * sum(s == "dev" for s in splits.values())
    assert exported["segments"] == {"train": 12 - n_dev, "dev": n_dev, "test": 0}

    run = tmp_path / "run"
    assert main(["--config", str(cli_config), "train", "asr-lora", "--data", str(data), "--out", str(run),
                 "--base-model", str(tiny_asr), "--device", "cpu", "--max-steps", "2", "--checkpoint-every", "1",
                 "--learning-rate", "0.01"]) == 0
    steps = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"step"')]
    assert [s["step"] for s in steps] == [1, 2] and all(np.isfinite(s["loss"]) for s in steps)
    adapter = run / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    import torch

    from agent.engines.asr.vibevoice_transformers import create

    base = create({"model_path": str(tiny_asr), "device": "cpu"}, "k")
    tuned = create({"model_path": str(tiny_asr), "device": "cpu", "adapter": str(adapter)}, "k")
    before, after = base._model.state_dict(), tuned._model.state_dict()
    base.close()
    tuned.close()
    assert before.keys() == after.keys()  # merged at load: a plain model, no LoRA layers left at inference
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed and all(".language_model.layers." in k and k.endswith("_proj.weight") for k in changed)

    out = tmp_path / "compare.json"
    tuned = f"vibevoice-transformers,adapter={adapter}"
    assert main(["--config", str(cli_config), "bench", "asr", "--engine", "vibevoice-transformers",
                 "--engine", tuned, "--dataset", str(data), "--out", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    assert [e["engine"] for e in result["engines"]] == ["vibevoice-transformers", tuned]
    comp = result["comparison"]
    assert {(t["engine"], t["segments"]) for t in comp["totals"]} == {("vibevoice-transformers", n_dev),
                                                                      (tuned, n_dev)}
    dev_refs = {d["reference"] for d in comp["diffs"]}
    assert dev_refs <= {*LINES, "주문한 물건이 아직 안 왔어요."} and len(comp["diffs"]) == 2 * n_dev  # 2 conditions
    assert all(set(d["engines"]) == {"vibevoice-transformers", tuned} for d in comp["diffs"])
    assert result["verdict"]["promote"] is False  # a handful of segments can never promote
    printed = capsys.readouterr().out
    assert "| vibevoice-transformers | as given |" in printed and "Promote: no" in printed
