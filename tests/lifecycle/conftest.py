"""Fixtures: the tiny random VibeVoice-ASR checkpoint (tests/engines/vibevoice/vv_tiny.py) and a small exported
dataset written straight in the export format."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lc_samples import write_sample

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines" / "vibevoice"))


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="LoRA training needs torch (Makefile installs it)")
    pytest.importorskip("transformers.models.vibevoice_asr", reason="needs transformers>=5.3")
    pytest.importorskip("peft", reason="LoRA training needs peft (the ml extra)")
    from vv_tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("vibevoice-asr-tiny"))


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    for i, text in enumerate(["배송 조회 부탁드려요", "환불 언제 되나요", "네 감사합니다"]):
        write_sample(root / "train", f"c{i}_0001", text, 0.8 + 0.2 * i, seed=i)
    write_sample(root / "dev", "d0_0001", "주문 취소할게요", 0.9, seed=9)
    return root
