"""TTS registry: builds the configured engine, falls back to espeak-ng loudly, rejects unknown engines."""

from __future__ import annotations

import logging
import shutil

import pytest

from agent.config import ConfigError, TtsConfig
from agent.engines.errors import EngineUnavailable
from agent.engines.tts import registry
from agent.engines.tts.espeak import EspeakTts
from agent.engines.tts.fake import FakeTts

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_engine_table() -> None:
    assert registry.ENGINES == {
        "azure": "agent.engines.tts.azure",
        "espeak": "agent.engines.tts.espeak",
        "fake": "agent.engines.tts.fake",
        "vibevoice-realtime": "agent.engines.tts.vibevoice_realtime",
    }


def test_builds_the_configured_engine_with_its_options() -> None:
    engine = registry.create_tts(TtsConfig(engine="fake", options={"fake": {"sample_rate": 24000}}))
    assert isinstance(engine, FakeTts) and engine.sample_rate == 24000


@needs_espeak
def test_unavailable_engine_falls_back_to_espeak_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(registry, "FALLBACK_COUNTS", {})
    cfg = TtsConfig(engine="fake", options={"fake": {"unavailable": True}, "espeak": {"speed": 200}})
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        engine = registry.create_tts(cfg)
        registry.create_tts(cfg)
    assert isinstance(engine, EspeakTts) and engine.speed == 200
    assert registry.FALLBACK_COUNTS == {"fake": 2}
    [first, _] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'fake'" in first.getMessage() and "configured as unavailable" in first.getMessage()


@needs_espeak
def test_engine_whose_module_cannot_be_imported_falls_back(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(registry, "ENGINES", {**registry.ENGINES, "gpu": "agent.engines.tts._no_such_module"})
    monkeypatch.setattr(registry, "FALLBACK_COUNTS", {})
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        assert isinstance(registry.create_tts(TtsConfig(engine="gpu")), EspeakTts)
    assert registry.FALLBACK_COUNTS == {"gpu": 1}
    assert "cannot import agent.engines.tts._no_such_module" in caplog.text


def test_espeak_itself_unavailable_is_raised_not_looped() -> None:
    cfg = TtsConfig(engine="espeak", options={"espeak": {"binary": "/nonexistent/espeak-ng"}})
    with pytest.raises(EngineUnavailable, match="not found"):
        registry.create_tts(cfg)


def test_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        registry.create_tts(TtsConfig(engine="festival"))
    assert err.value.key == "tts.engine" and "festival" in err.value.reason


def test_bad_engine_option_names_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        registry.create_tts(TtsConfig(engine="fake", options={"fake": {"sample_rat": 8000}}))
    assert err.value.key == "tts.engines.fake.sample_rat"
