"""Samples in the export format (`callagent dataset export`), written directly for tests that need a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf


def write_sample(directory: Path, name: str, text: str, seconds: float, seed: int, rate: int = 8000) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    audio = (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 2000).astype(np.int16)
    sf.write(str(directory / f"{name}.wav"), audio, rate, subtype="PCM_16")
    sample = {"audio_duration": seconds, "audio_path": f"{name}.wav", "customized_context": [],
              "segments": [{"speaker": 0, "text": text, "start": 0.0, "end": seconds}]}
    (directory / f"{name}.json").write_text(json.dumps(sample, ensure_ascii=False), encoding="utf-8")
