"""vibevoice-realtime over the stand-in `vibevoice` package of vv_standin.py (the real Realtime code is not
installable here): the real import paths, preset loading, pool fairness, barge-in and failure handling."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="vibevoice-realtime needs torch (Makefile installs it)")

import vv_standin  # noqa: E402
from vv_standin import write_preset  # noqa: E402

from agent.config import ConfigError  # noqa: E402
from agent.engines.errors import EngineError, EngineUnavailable  # noqa: E402
from agent.engines.tts.vibevoice_realtime import (  # noqa: E402
    SAMPLE_RATE,
    UnsafePreset,
    create,
    load_preset,
    merge_short,
    resolve_preset,
    split_sentences,
)

KEY = "tts.engines.vibevoice-realtime"


def test_streams_24khz_int16_chunks_from_a_deep_copied_preset(standin, setup) -> None:
    engine = create({**setup, "ddpm_steps": 7}, KEY)
    chunks = list(engine.synthesize("네, 확인해 드릴게요.", "kr-Spk1_man", call_id="c1"))
    assert len(chunks) == len("네, 확인해 드릴게요.")  # the stand-in makes one chunk per character
    assert all(c.sample_rate == SAMPLE_RATE and c.pcm.dtype == np.int16 and c.pcm.size == 3200 for c in chunks)
    assert 15000 < int(np.abs(chunks[0].pcm).max()) < 17000  # 0.5 full scale
    model = standin.VibeVoiceStreamingForConditionalGenerationInference.instances[0]
    assert model.steps == 7 and model.kwargs["attn_implementation"] == "sdpa"
    list(engine.synthesize("두 번째", "kr-Spk1_man", call_id="c1"))
    assert standin.PRESET_WAS_GROWN == [False, False]  # each stream got a fresh copy of the preset
    engine.close()


def test_unknown_voice_uses_the_default(standin, setup) -> None:
    engine = create(setup, KEY)
    assert len(list(engine.synthesize("안녕하세요", "ko", call_id="c1"))) == 5
    engine.close()


def test_long_reply_yields_the_instance_between_sentences(standin, setup) -> None:
    standin.CHUNK_DELAY_S = 0.02  # a wide window for call B to queue while A's first sentence plays
    engine = create(setup, KEY)  # pool_size 1
    first_chunk = threading.Event()
    results: dict[str, int] = {}

    def speak(call: str, text: str, signal: threading.Event | None = None) -> None:
        n = 0
        for _ in engine.synthesize(text, "kr-Spk0_woman", call_id=call):
            n += 1
            if signal:
                signal.set()
        results[call] = n

    sentences = ["첫째 문장은 이렇습니다.", "둘째 문장은 저렇습니다.", "셋째 문장은 그렇습니다."]
    long_reply = threading.Thread(target=speak, args=("A", " ".join(sentences), first_chunk))
    long_reply.start()
    assert first_chunk.wait(5)
    short = threading.Thread(target=speak, args=("B", "네 고객님."))
    short.start()
    long_reply.join(10)
    short.join(10)
    texts = [t[1] for t in standin.TRACE]
    assert texts == [sentences[0], "네 고객님.", *sentences[1:]]
    ends, starts = [t[3] for t in standin.TRACE[:-1]], [t[2] for t in standin.TRACE[1:]]
    assert all(end <= start for end, start in zip(ends, starts, strict=True))  # one stream at a time
    assert results == {"A": sum(len(x) for x in sentences), "B": 6}
    engine.close()


def test_two_instances_serve_two_calls_at_once(standin, setup) -> None:
    standin.CHUNK_DELAY_S = 0.01
    engine = create({**setup, "pool_size": 2}, KEY)
    threads = [threading.Thread(target=lambda c=c: list(engine.synthesize("가나다라마바사아", "kr-Spk0_woman",
                                                                           call_id=c)))
               for c in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    (i0, _, s0, e0, _), (i1, _, s1, e1, _) = standin.TRACE
    assert {i0, i1} == {0, 1} and s1 < e0 and s0 < e1  # overlapped, on different instances
    engine.close()


def test_barge_in_stops_generation_and_frees_the_instance(standin, setup) -> None:
    engine = create(setup, KEY)
    stream = engine.synthesize("아주 긴 안내 문장이 계속 이어집니다 " * 5, "kr-Spk0_woman", call_id="c1")
    next(stream)
    stream.close()
    assert standin.TRACE[-1][4] is True  # generate() saw stop_check_fn and stopped early
    assert engine.pool.busy == 0
    engine.close()


def test_stalled_generation_times_out_and_is_stopped(standin, setup) -> None:
    engine = create({**setup, "chunk_timeout_s": 0.3}, KEY)
    with pytest.raises(EngineError, match="no audio") as info:
        list(engine.synthesize("[hang]", "kr-Spk0_woman", call_id="c1"))
    assert info.value.retryable
    assert standin.TRACE[-1][4] is True and engine.pool.busy == 0
    engine.close()


def test_generation_failure_is_an_engine_error(standin, setup) -> None:
    engine = create(setup, KEY)
    with pytest.raises(EngineError, match="device-side assert") as info:
        list(engine.synthesize("[boom] 실패", "kr-Spk0_woman", call_id="c1"))
    assert not info.value.retryable
    assert engine.pool.busy == 0
    engine.close()


def test_unavailable_without_package_model_preset_or_gpu(setup, tmp_path: Path) -> None:
    vv_standin.unload()
    with pytest.raises(EngineUnavailable, match="not installed"):
        create(setup, KEY)
    with pytest.raises(EngineUnavailable, match="config.json missing"):
        create({**setup, "model_path": str(tmp_path / "nowhere")}, KEY)
    if not torch.cuda.is_available():
        with pytest.raises(EngineUnavailable, match="no CUDA"):
            create({**setup, "device": "cuda"}, KEY)


def test_missing_preset_is_unavailable(standin, setup) -> None:
    with pytest.raises(EngineUnavailable, match="no preset en-Carter_man.pt"):
        create({**setup, "voices": ["kr-Spk0_woman", "en-Carter_man"]}, KEY)


def test_voice_names_are_validated_in_config(setup) -> None:
    with pytest.raises(ConfigError, match="plain preset name"):
        create({**setup, "voices": ["../../etc/passwd"]}, KEY)
    with pytest.raises(ConfigError, match="not in voices"):
        create({**setup, "default_voice": "en-Emma_woman"}, KEY)


def test_preset_paths_cannot_escape_the_voices_dir(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    write_preset(voices / "kr-Spk0_woman.pt")
    outside = write_preset(tmp_path / "elsewhere" / "evil.pt")
    (voices / "evil.pt").symlink_to(outside)
    for bad in ("../elsewhere/evil", "sub/kr-Spk0_woman", "/etc/passwd", "..", ""):
        with pytest.raises(UnsafePreset):
            resolve_preset(voices, bad)
    with pytest.raises(UnsafePreset, match="outside"):
        resolve_preset(voices, "evil")
    assert resolve_preset(voices, "kr-Spk0_woman") == (voices / "kr-Spk0_woman.pt").resolve()
    os.chmod(voices / "kr-Spk0_woman.pt", 0o666)
    with pytest.raises(UnsafePreset, match="world-writable"):
        resolve_preset(voices, "kr-Spk0_woman")


def test_pickled_presets_load_only_when_allowed(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from transformers import DynamicCache
    from transformers.modeling_outputs import BaseModelOutputWithPast

    cache = DynamicCache()
    cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 0)
    output = BaseModelOutputWithPast(last_hidden_state=torch.zeros(1, 3, 8), cache=cache)
    path = tmp_path / "upstream-style.pt"
    torch.save({"lm": output, "tts_lm": output, "neg_lm": output, "neg_tts_lm": output}, path)
    with pytest.raises(UnsafePreset, match="allow_pickle_presets"):
        load_preset(path, "cpu", allow_pickle=False)
    assert load_preset(path, "cpu", allow_pickle=True)["lm"].last_hidden_state.shape == (1, 3, 8)
    plain = write_preset(tmp_path / "plain.pt", 2.0)
    assert float(load_preset(plain, "cpu", allow_pickle=False)["lm"]["last_hidden_state"][0, 0, 0]) == 2.0


def test_sentences_are_split_and_quotes_made_ascii() -> None:
    assert split_sentences("네. “확인”했어요!  감사합니다?") == ["네.", '"확인"했어요!', "감사합니다?"]


def test_short_sentences_join_the_next_one() -> None:
    assert merge_short(["네.", "주문을 확인해 드릴게요.", "잠시만요."]) == ["네. 주문을 확인해 드릴게요. 잠시만요."]
    assert merge_short(["네.", "알겠습니다."]) == ["네. 알겠습니다."]
    assert merge_short(["주문을 확인해 드릴게요.", "배송은 내일 도착합니다."]) == [
        "주문을 확인해 드릴게요.", "배송은 내일 도착합니다."]
    assert merge_short([]) == []


def test_one_generate_for_a_short_sentence_and_its_neighbour(standin, setup) -> None:
    engine = create(setup, KEY)
    list(engine.synthesize("네. 주문하신 상품을 확인해 드릴게요.", "kr-Spk0_woman", call_id="c1"))
    assert [t[1] for t in standin.TRACE] == ["네. 주문하신 상품을 확인해 드릴게요."]
    engine.close()


def test_audio_per_sentence_is_capped_and_generation_stopped(standin, setup) -> None:
    standin.CHUNK_DELAY_S = 0.005
    engine = create({**setup, "cap_base_s": 0.5, "cap_s_per_char": 0.05}, KEY)
    text = "가나다라마바사아자차카타파하 끝이 없는 문장"  # the stand-in makes one 133 ms chunk per character
    chunks = list(engine.synthesize(text, "kr-Spk0_woman", call_id="c1"))
    cap_s = 0.5 + 0.05 * len(text)
    assert sum(c.pcm.size for c in chunks) / SAMPLE_RATE <= cap_s < (len(chunks) + 1) * 3200 / SAMPLE_RATE
    assert len(chunks) < len(text) and engine.capped == 1
    assert standin.TRACE[-1][4] is True  # generate() saw the stop request
    assert engine.pool.busy == 0
    engine.close()


def test_package_that_fails_to_register_with_transformers_5_falls_back(setup, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream registers AutoConfig "vibevoice" at import; transformers 5.x already has that name and raises
    ValueError. Reproduced through transformers' own registry, so the real error reaches the engine."""
    transformers = pytest.importorskip("transformers")
    if not transformers.__version__.startswith("5."):
        pytest.skip("the clash exists only under transformers 5.x")
    root = vv_standin.install(tmp_path / "site")
    (root / "vibevoice" / "__init__.py").write_text(
        "from transformers import AutoConfig, PretrainedConfig\n\n\n"
        "class VibeVoiceConfig(PretrainedConfig):\n    model_type = 'vibevoice'\n\n\n"
        "AutoConfig.register('vibevoice', VibeVoiceConfig)\n")
    monkeypatch.syspath_prepend(str(root))
    try:
        with pytest.raises(EngineUnavailable, match=r"does not import under transformers 5\..*ValueError"):
            create(setup, KEY)
    finally:
        vv_standin.unload()
    from agent.config import TtsConfig
    from agent.engines.tts.registry import create_tts

    monkeypatch.syspath_prepend(str(root))
    try:
        engine = create_tts(TtsConfig(engine="vibevoice-realtime", options={"vibevoice-realtime": setup}))
    finally:
        vv_standin.unload()
    assert engine.name == "espeak"  # start-up carries on with espeak-ng
