"""The shipped hotword packs and model manifests parse, and name engines that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.engines.asr import hotwords
from agent.engines.asr.registry import ENGINES

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("industry", ["banking", "ecommerce", "telecom"])
def test_hotword_packs_parse_and_carry_the_plan_terms(industry: str) -> None:
    path = ROOT / "hotwords" / f"{industry}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["industry"] == industry
    assert set(data["aliases"]) <= set(data["terms"])  # every alias belongs to a listed term
    terms = hotwords.parse_file(path)
    assert len(terms) == len(set(terms)) and len(terms) < 60
    plan = {"banking": {"적금", "IRP", "주담대", "마이너스통장", "이체한도", "케이뱅크"},
            "ecommerce": {"새벽배송", "할인코드", "로켓배송", "카카오페이"},
            "telecom": {"5G", "데이터 무제한", "위약금", "eSIM", "알뜰폰"}}[industry]
    assert plan <= set(terms)


@pytest.mark.parametrize("name", ["vibevoice-asr", "vibevoice-asr-hf", "vibevoice-realtime-0.5b",
                                  "qwen2.5-7b-instruct"])
def test_model_manifests(name: str) -> None:
    data = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert data["name"] == name
    for key in ("source", "engine", "path", "dtype", "device", "pool_size", "gpu_memory_gib"):
        assert key in data, key
    assert data["engine"] in {*ENGINES, "vibevoice-realtime", "litellm"}
    assert data["dtype"] == "bfloat16" and data["path"].startswith("/opt/callagent/models/")
