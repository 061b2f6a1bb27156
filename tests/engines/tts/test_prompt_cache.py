"""Prompt cache: synthesized once per (engine, voice, rate, text), reused across instances and threads."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from agent.config import ControllerConfig
from agent.engines.errors import EngineError
from agent.engines.tts.cache import PromptCache
from agent.engines.tts.espeak import EspeakTts
from agent.engines.tts.fake import FakeTts

GREETING = ControllerConfig().greeting


def test_second_get_is_a_hit_without_engine_work(tmp_path: Path) -> None:
    engine = FakeTts()
    cache = PromptCache(engine, tmp_path, "ko")
    first = cache.get(GREETING, 8000)
    assert cache.get(GREETING, 8000) == first
    assert engine.calls == [GREETING] and (cache.hits, cache.misses) == (1, 1)
    info = sf.info(str(first))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert info.duration == pytest.approx(len(GREETING) * 0.06, rel=0.01)


def test_cache_survives_a_restart(tmp_path: Path) -> None:
    path = PromptCache(FakeTts(), tmp_path, "ko").get(GREETING, 8000)
    engine = FakeTts()  # a new process: new engine, new cache object, same directory
    assert PromptCache(engine, tmp_path, "ko").get(GREETING, 8000) == path
    assert engine.calls == []


def test_key_covers_engine_voice_rate_and_text_but_not_whitespace(tmp_path: Path) -> None:
    engine = FakeTts()
    cache = PromptCache(engine, tmp_path, "ko")
    base = cache.get("잠시만 기다려 주세요.", 8000)
    assert cache.get("  잠시만   기다려\n주세요. ", 8000) == base
    others = {
        cache.get("잠시만 기다려 주세요.", 16000),
        cache.get("잠시만요.", 8000),
        PromptCache(engine, tmp_path, "ko-2").get("잠시만 기다려 주세요.", 8000),
        PromptCache(FakeTts(ms_per_char=80), tmp_path, "ko").get("잠시만 기다려 주세요.", 8000),
    }
    assert len(others) == 4 and base not in others
    assert sf.info(str(cache.get("잠시만 기다려 주세요.", 16000))).samplerate == 16000
    assert all(p.name.startswith("prompt-") and p.suffix == ".wav" for p in others)


def test_concurrent_requests_synthesize_once(tmp_path: Path) -> None:
    engine = FakeTts(delay_s=0.2)
    cache = PromptCache(engine, tmp_path, "ko")
    barrier = threading.Barrier(8)
    paths: list[Path] = []

    def ask() -> None:
        barrier.wait(timeout=5)
        paths.append(cache.get(GREETING, 8000))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(paths) == 8 and len(set(paths)) == 1
    assert engine.calls == [GREETING]


def test_warm_then_greeting_is_immediate(tmp_path: Path) -> None:
    engine = FakeTts(delay_s=0.1)
    cache = PromptCache(engine, tmp_path, "ko")
    prompts = [GREETING, ControllerConfig().apology, ControllerConfig().transfer_notice]
    warmed = cache.warm(prompts, 8000)
    assert [p.is_file() for p in warmed] == [True, True, True] and len(engine.calls) == 3
    started = time.perf_counter()
    assert cache.get(GREETING, 8000) == warmed[0]
    assert time.perf_counter() - started < 0.05  # far inside the 300 ms answer-to-greeting budget
    assert len(engine.calls) == 3


def test_failures_leave_nothing_behind(tmp_path: Path) -> None:
    cache = PromptCache(FakeTts(fail=True), tmp_path, "ko")
    with pytest.raises(EngineError):
        cache.get(GREETING, 8000)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="empty"):
        cache.get(" \n", 8000)
    with pytest.raises(ValueError, match="sample rate"):
        cache.get(GREETING, 123)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_greeting_is_cached_at_the_call_rate(tmp_path: Path) -> None:
    cache = PromptCache(EspeakTts(), tmp_path / "tts-cache", "ko")
    path = cache.get(GREETING, 8000)
    info = sf.info(str(path))
    assert info.samplerate == 8000 and 4 < info.duration < 20
    assert PromptCache(EspeakTts(speed=250), tmp_path / "tts-cache", "ko").path_for(GREETING, 8000) != path
