"""`callagent synth calls`: a pack's scripted two-speaker dialog → stereo 8 kHz WAV laid out as uuid_record writes
it (caller LEFT, agent RIGHT) through the μ-law channel, with its transcript. VibeVoice-TTS runs with a tiny
random checkpoint (tts_tiny.py); espeak-ng is the voice without a checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.lifecycle import synth
from agent.ops.bench import mulaw
from agent.ops.cli import main

MULAW_VALUES = set(mulaw.decode(np.arange(256, dtype=np.uint8)).tolist())


@pytest.fixture(scope="module")
def tiny_tts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="VibeVoice-TTS needs torch (Makefile installs it)")
    pytest.importorskip("transformers.models.vibevoice", reason="needs transformers>=5.24 (VibeVoice-TTS)")
    from tts_tiny import write_tiny_tts

    return write_tiny_tts(tmp_path_factory.mktemp("vibevoice-tts-tiny"))


def check_call(wav: Path, transcript: Path) -> dict[str, object]:
    meta = json.loads(transcript.read_text(encoding="utf-8"))
    audio, rate = sf.read(str(wav), dtype="int16", always_2d=True)
    info = sf.info(str(wav))
    assert rate == 8000 and audio.shape[1] == 2 and info.subtype == "PCM_16"
    assert meta["audio_path"] == wav.name and meta["channels"] == ["caller", "agent"]
    assert meta["audio_duration"] == pytest.approx(len(audio) / 8000, abs=0.01)
    segs = meta["segments"]
    assert [s["role"] for s in segs][:2] == ["agent", "caller"] and segs[-1]["role"] == "agent"
    for seg in segs:
        side, other = (0, 1) if seg["role"] == "caller" else (1, 0)
        a, b = int(seg["start"] * 8000), int(seg["end"] * 8000)
        assert np.abs(audio[a:b, side]).max() > 0 and not audio[a:b, other].any()  # one speaker, own channel
        assert set(np.unique(audio[a:b, side]).tolist()) <= MULAW_VALUES  # through the μ-law channel
    starts = [s["start"] for s in segs]
    assert starts == sorted(starts) and all(x["end"] < y["start"] for x, y in zip(segs, segs[1:], strict=False))
    return meta


def test_script_comes_from_the_pack() -> None:
    lines = synth.script("banking", seed=3)
    assert lines[0].speaker == synth.AGENT and "하늘은행" in lines[0].text
    assert [ln.speaker for ln in lines] == [1, 0, 1, 0, 1, 0, 1]
    assert lines[-1].text == "하늘은행을 이용해 주셔서 감사합니다."
    assert synth.script("banking", seed=3) == lines  # the seed picks the topics
    assert len({tuple(synth.script("banking", seed=k)) for k in range(10)}) > 3
    assert synth.spoken("5~7일, 연 3.5%") == "오 에서 칠일, 연 삼 점 오 퍼센트"


def test_vibevoice_tts_renders_a_stereo_call(tiny_tts: Path, tmp_path: Path) -> None:
    (item,) = synth.synth_calls(tmp_path, packs=["ecommerce"], model=str(tiny_tts), topics=0, max_frames=2)
    assert item["backend"] == "vibevoice" and item["lines"] == 3
    meta = check_call(Path(item["wav"]), Path(item["transcript"]))
    # two speech latents per line at 7.5 per second: 0.27 s each
    assert all(s["end"] - s["start"] == pytest.approx(2 / 7.5, abs=0.02) for s in meta["segments"])


def test_scheduler_walks_down_to_a_clean_sample() -> None:
    torch = pytest.importorskip("torch")
    s = synth.DdimVScheduler()
    s.set_timesteps(5)
    assert s.timesteps.tolist() == [999, 749, 500, 250, 0]
    x = torch.randn(4, 8)
    # v = 0 at every step means x0 = sqrt(ab) x: the last step returns exactly the clean estimate
    out = s.step(torch.zeros_like(x), s.timesteps[-1], x).prev_sample
    assert torch.allclose(out, s.alphas_cumprod[0].sqrt().float() * x, atol=1e-6)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (Makefile system-packages)")
def test_cli_espeak_voices_without_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "callagent.yaml"
    cfg.write_text("log_level: WARNING\n", encoding="utf-8")
    assert main(["--config", str(cfg), "synth", "calls", "--out", str(tmp_path / "out"), "--pack", "telecom",
                 "--count", "2"]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(i["wav"]).name for i in items] == ["telecom-000.wav", "telecom-001.wav"]
    for item in items:
        meta = check_call(Path(item["wav"]), Path(item["transcript"]))
        assert meta["backend"] == "espeak-ng" and len(meta["segments"]) == 7


def test_the_rendered_caller_lines_drive_a_simulated_call(tmp_path: Path) -> None:
    """Simulated callers with rendered voices: the scenario speaks each caller line as audio (no injection)
    through the simulator into the real worker and controller."""
    import soundfile as sf

    from agent.ops.demo import run_demo
    from agent.sim.scenario import SayAudio, load_script

    (item,) = synth.synth_calls(tmp_path / "out", packs=["ecommerce"], backend="espeak", topics=1)
    script = load_script(item["scenario"])
    audio_steps = [s for s in script.steps if isinstance(s, SayAudio)]
    meta = json.loads(Path(item["transcript"]).read_text(encoding="utf-8"))
    callers = [s for s in meta["segments"] if s["role"] == "caller"]
    assert len(audio_steps) == len(callers) and all(s.inject_text is None for s in audio_steps)
    stereo, rate = sf.read(item["wav"], dtype="int16")
    first = callers[0]
    left = stereo[round(first["start"] * rate):round(first["end"] * rate), 0]
    line, _ = sf.read(str(audio_steps[0].path), dtype="int16")
    assert (line == left).all()  # the caller's own channel, exactly
    from agent.config import parse_config

    cfg = parse_config({"log_level": "WARNING"}, base_dir=str(tmp_path))  # embedded PostgreSQL under tmp_path
    assert run_demo(cfg, scenario=item["scenario"], as_json=True, speed=4.0) == 0
