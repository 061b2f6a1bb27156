"""Engine registry: builds by name, falls back to Vosk loudly when an engine cannot start, refuses unknown names."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agent.config import ConfigError, WorkerConfig
from agent.engines.asr import registry
from agent.engines.asr.base import AsrContext
from agent.engines.asr.fake import FakeAsr
from agent.engines.errors import EngineError, EngineUnavailable


def test_every_registered_engine_is_named_and_the_fallback_is_vosk():
    assert set(registry.ENGINES) == {"vosk", "fake", "google", "vibevoice-vllm", "vibevoice-transformers",
                                     "vibevoice-streaming"}
    assert registry.FALLBACK_ENGINE == "vosk"


def test_configured_engine_is_built_with_its_own_options():
    cfg = WorkerConfig(asr_engine="fake", asr_options={"fake": {"text": "안녕하세요"}})
    engine = registry.create_asr(cfg)
    assert isinstance(engine, FakeAsr)
    assert engine.transcribe(np.zeros(1600, np.int16), 16000, AsrContext()).text == "안녕하세요"


def test_unknown_engine_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as err:
        registry.create_asr(WorkerConfig(asr_engine="whisper"))
    assert err.value.key == "worker.asr.engine" and "whisper" in err.value.reason


def test_bad_engine_options_name_their_dotted_key():
    with pytest.raises(ConfigError) as err:
        registry.create_asr(WorkerConfig(asr_engine="fake", asr_options={"fake": {"delay": 1}}))
    assert err.value.key == "worker.asr.engines.fake.delay"


def test_unavailable_engine_falls_back_to_vosk_with_one_warning(monkeypatch, caplog):
    sentinel = object()
    built: list[str] = []

    def fake_create_engine(name, options):
        built.append(name)
        if name == "fake":
            raise EngineUnavailable("fake", "no GPU here")
        return sentinel

    monkeypatch.setattr(registry, "create_engine", fake_create_engine)
    before = registry.fallbacks.get("fake", 0)
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        engine = registry.create_asr(WorkerConfig(asr_engine="fake"))
    assert engine is sentinel and built == ["fake", "vosk"]
    assert registry.fallbacks["fake"] == before + 1
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'fake'" in record.getMessage() and "no GPU here" in record.getMessage()
    assert "FALLING BACK to 'vosk'" in record.getMessage()


def test_a_module_that_cannot_be_imported_counts_as_unavailable(monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "fake", "agent.engines.asr.no_such_module_here")
    with pytest.raises(EngineUnavailable, match="not importable"):
        registry.create_engine("fake", {})


def test_vosk_unavailable_is_not_hidden(monkeypatch):
    def refuse(name, options):
        raise EngineUnavailable(name, "model missing")

    monkeypatch.setattr(registry, "create_engine", refuse)
    with pytest.raises(EngineUnavailable, match="model missing"):
        registry.create_asr(WorkerConfig(asr_engine="vosk"))


def test_fake_engine_options():
    from agent.engines.asr import fake

    with pytest.raises(EngineUnavailable):
        fake.create({"unavailable": True}, "k")
    engine = fake.create({"fail": "boom", "retryable": True}, "k")
    with pytest.raises(EngineError, match="boom") as err:
        engine.transcribe(np.zeros(160, np.int16), 8000, AsrContext(call_id="c"))
    assert err.value.retryable
    assert engine.calls[0].samples == 160 and engine.calls[0].context.call_id == "c"


def test_real_fallback_builds_the_vosk_engine():
    from agent.engines.asr.vosk import VoskAsr

    cfg = WorkerConfig(asr_engine="fake", asr_options={"fake": {"unavailable": True}})
    engine = registry.create_asr(cfg)
    assert isinstance(engine, VoskAsr) and engine.name == "vosk"
