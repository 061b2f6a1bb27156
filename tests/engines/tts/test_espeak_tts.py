"""espeak-ng engine: real Korean synthesis, options, and clear errors (missing, failing, hanging binary)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from agent.config_reader import ConfigError
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts import espeak

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
KEY = "tts.engines.espeak"
TEXT = "안녕하세요, 고객센터입니다. 무엇을 도와드릴까요?"


def _synth(engine: espeak.EspeakTts, text: str, voice: str = "ko") -> np.ndarray:
    chunks = list(engine.synthesize(text, voice))
    assert len(chunks) == 1  # espeak-ng is fast enough to deliver one chunk per text
    assert chunks[0].sample_rate == 22050
    assert chunks[0].pcm.dtype == np.int16 and chunks[0].pcm.ndim == 1
    return chunks[0].pcm


def test_korean_text_gives_audible_speech_of_plausible_length() -> None:
    engine = espeak.create({}, KEY)
    pcm = _synth(engine, TEXT)
    seconds = len(pcm) / 22050
    # 21 syllables at ~175 wpm: a few seconds, not a blip and not a minute.
    assert 1.5 < seconds < 8.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    assert rms > 500  # speech, not silence
    assert len(_synth(engine, TEXT + " " + TEXT)) > 1.7 * len(pcm)


def test_speed_option_changes_the_duration() -> None:
    slow = _synth(espeak.create({"speed": 120}, KEY), TEXT)
    fast = _synth(espeak.create({"speed": 300}, KEY), TEXT)
    assert len(fast) < 0.7 * len(slow)
    assert espeak.create({"speed": 120}, KEY).cache_tag != espeak.create({"speed": 300}, KEY).cache_tag


def test_unknown_voice_falls_back_to_the_default_voice() -> None:
    engine = espeak.create({}, KEY)
    # After an engine fallback the configured voice belongs to the other engine.
    assert np.array_equal(_synth(engine, TEXT, "Korean-female-1"), _synth(engine, TEXT, "ko"))


def test_empty_text_gives_no_audio() -> None:
    assert list(espeak.create({}, KEY).synthesize(" \n ", "ko")) == []


def test_missing_binary_is_unavailable() -> None:
    with pytest.raises(EngineUnavailable, match="not found"):
        espeak.create({"binary": "/nonexistent/espeak-ng"}, KEY)


@pytest.mark.parametrize(("options", "key"), [({"sped": 100}, "sped"), ({"pitch": 120}, "pitch")])
def test_bad_options_name_the_key(options: dict[str, int], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        espeak.create(options, KEY)
    assert err.value.key == f"{KEY}.{key}"


def _fake_binary(tmp_path: Path, body: str) -> str:
    """A stand-in espeak-ng that lists the real voices but synthesizes with `body`."""
    real = shutil.which("espeak-ng")
    script = tmp_path / "espeak-ng"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "--voices" ]; then exec {real} --voices; fi\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_failing_binary_raises_engine_error_with_its_message(tmp_path: Path) -> None:
    engine = espeak.create({"binary": _fake_binary(tmp_path, "echo 'bad things' >&2; exit 3")}, KEY)
    with pytest.raises(EngineError, match="bad things") as err:
        list(engine.synthesize(TEXT, "ko"))
    assert not err.value.retryable


def test_hanging_binary_times_out_as_retryable(tmp_path: Path) -> None:
    engine = espeak.create({"binary": _fake_binary(tmp_path, "exec sleep 5"), "timeout_s": 0.5}, KEY)
    with pytest.raises(EngineError, match="within 0.5 s") as err:
        list(engine.synthesize(TEXT, "ko"))
    assert err.value.retryable


def test_garbage_output_is_an_engine_error(tmp_path: Path) -> None:
    engine = espeak.create({"binary": _fake_binary(tmp_path, "echo not-a-wav-file")}, KEY)
    with pytest.raises(EngineError, match="unreadable WAV"):
        list(engine.synthesize(TEXT, "ko"))


def test_another_engines_voice_maps_to_its_language() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make system-packages)")
    engine = espeak.EspeakTts()
    assert engine._voice("en-Carter_man") == "en"  # a VibeVoice English preset, after a fallback
    assert engine._voice("kr-Spk0_woman") == "ko"
    assert engine._voice("zz-nothing") == "ko"
