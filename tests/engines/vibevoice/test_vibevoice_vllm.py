"""vibevoice-vllm against a real loopback OpenAI-compatible server answering in VibeVoice's output format."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from vv_servers import Reply, ScriptedOpenAI

from agent.config_reader import ConfigError
from agent.engines.asr import hotwords
from agent.engines.asr.base import AsrContext, AsrSegment
from agent.engines.asr.vibevoice_vllm import create
from agent.engines.errors import EngineError, EngineUnavailable

HOTWORDS_DIR = Path(__file__).resolve().parents[3] / "hotwords"
KEYS = "Please transcribe it with these keys: Start time, End time, Speaker ID, Content"


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def engine_for(server: ScriptedOpenAI, **extra):
    return create({"base_url": server.url, "timeout_s": 3.0, **extra}, "worker.asr.engines.vibevoice-vllm")


def decoded_audio(request: dict) -> tuple[np.ndarray, int]:
    part = request["messages"][1]["content"][0]
    assert part["type"] == "audio_url"
    prefix = "data:audio/wav;base64,"
    assert part["audio_url"]["url"].startswith(prefix)
    data, rate = sf.read(io.BytesIO(base64.b64decode(part["audio_url"]["url"][len(prefix):])), dtype="int16")
    return data, rate


@pytest.mark.parametrize("rate", [8000, 16000])
def test_request_shape_and_parsed_segments(openai_server: ScriptedOpenAI, rate: int) -> None:
    openai_server.replies = [Reply(content=(
        'assistant\n[{"Start":0.0,"End":1.4,"Speaker":0,"Content":"주문한 물건이 아직 안 왔어요"},'
        '{"Start":1.5,"End":2.5,"Speaker":0,"Content":"[Noise] 확인 부탁드려요"}]\n'))]
    engine = engine_for(openai_server)
    result = engine.transcribe(tone(2.5, rate), rate, AsrContext(hotwords=("로켓배송", "쿠폰"), call_id="c1"))
    engine.close()

    req = openai_server.requests[0]
    audio, got_rate = decoded_audio(req)
    assert got_rate == 24000
    assert len(audio) == pytest.approx(2.5 * 24000, abs=2)
    assert req["model"] == "vibevoice"
    assert req["temperature"] == 0.0
    assert req["messages"][0] == {"role": "system", "content": (
        "You are a helpful assistant that transcribes audio input into text output in JSON format.")}
    assert req["messages"][1]["content"][1] == {
        "type": "text", "text": f"This is a 2.50 seconds audio, with extra info: 로켓배송, 쿠폰\n\n{KEYS}"}
    assert 16 <= req["max_tokens"] < 1024  # scaled to a 2.5 s utterance, below the configured cap

    assert result.engine == "vibevoice-vllm"
    assert result.text == "주문한 물건이 아직 안 왔어요 확인 부탁드려요"
    assert result.segments == (
        AsrSegment("주문한 물건이 아직 안 왔어요", 0.0, 1.4, 0), AsrSegment("[Noise] 확인 부탁드려요", 1.5, 2.5, 0))


def test_prompt_without_hotwords(openai_server: ScriptedOpenAI) -> None:
    engine = engine_for(openai_server)
    assert engine.transcribe(tone(1.0, 8000), 8000, AsrContext()).text == ""
    engine.close()
    assert openai_server.requests[0]["messages"][1]["content"][1]["text"] == (
        "This is a 1.00 seconds audio, please transcribe it with these keys: Start time, End time, Speaker ID, Content")


def test_ecommerce_call_with_tenant_extra_sends_this_exact_context(openai_server: ScriptedOpenAI) -> None:
    terms = hotwords.load(HOTWORDS_DIR, "ecommerce", ["하늘마켓"])
    engine = engine_for(openai_server)
    engine.transcribe(tone(3.0, 8000), 8000, AsrContext(hotwords=terms, call_id="c2"))
    engine.close()
    assert openai_server.requests[0]["messages"][1]["content"][1]["text"] == (
        "This is a 3.00 seconds audio, with extra info: 하늘마켓, 무료배송, 당일배송, 새벽배송, 반품, 교환, "
        "포인트, 쿠폰, 할인코드, 회원등급, 로켓배송, 네이버페이, 카카오페이, N페이, 프로모션 코드, "
        "반품 신청\n\n" + KEYS)


def test_truncated_answer_keeps_complete_segments(openai_server: ScriptedOpenAI) -> None:
    openai_server.replies = [Reply(finish_reason="length", content=(
        '[{"Start":0.0,"End":1.0,"Speaker":0,"Content":"카드를 잃어버렸어요"},'
        '{"Start":1.1,"End":2.0,"Speaker":0,"Content":"분실 신고'))]
    engine = engine_for(openai_server)
    result = engine.transcribe(tone(2.0, 8000), 8000, AsrContext())
    engine.close()
    assert result.text == "카드를 잃어버렸어요"
    assert [s.end for s in result.segments] == [1.0]


def test_fast_speech_cut_by_the_budget_is_asked_again_with_a_bigger_one(openai_server: ScriptedOpenAI) -> None:
    first = '[{"Start":0.0,"End":2.5,"Speaker":0,"Content":"주문한 거 언제 와요"},{"Start":2.6,"End":5.9,"Spe'
    whole = ('[{"Start":0.0,"End":2.5,"Speaker":0,"Content":"주문한 거 언제 와요"},'
             '{"Start":2.6,"End":5.9,"Speaker":0,"Content":"내일까지 꼭 받아야 하거든요"}]')
    openai_server.replies = [Reply(finish_reason="length", content=first), Reply(content=whole)]
    engine = engine_for(openai_server, max_tokens=1024)
    result = engine.transcribe(tone(6.0, 8000), 8000, AsrContext())
    engine.close()
    assert result.text == "주문한 거 언제 와요 내일까지 꼭 받아야 하거든요"
    budgets = [r["max_tokens"] for r in openai_server.requests]
    assert budgets == [64 + 20 * 6, 2 * (64 + 20 * 6)] and engine.budget_retries == 1


def test_repetition_loop_is_collapsed(openai_server: ScriptedOpenAI) -> None:
    loop = ", ".join(["요금제 변경"] * 30)
    openai_server.replies = [Reply(finish_reason="length", content=(
        '```json\n[{"Start":0,"End":3,"Speaker":0,"Content":"요금제 변경하고 싶어요"},'
        '{"Start":0,"End":3,"Speaker":0,"Content":"요금제 변경하고 싶어요"},'
        f'{{"Start":3,"End":4,"Speaker":0,"Content":"{loop}"}}]\n```'))]
    engine = engine_for(openai_server)
    result = engine.transcribe(tone(4.0, 8000), 8000, AsrContext())
    engine.close()
    assert result.text == "요금제 변경하고 싶어요 요금제 변경"
    assert len(openai_server.requests) == 1  # the audio's end was transcribed: a loop, not asked again


def test_server_error_then_success_is_one_retry(openai_server: ScriptedOpenAI) -> None:
    openai_server.replies = [Reply(status=500, body='{"error":"boom"}'),
                             Reply(content='[{"Start":0,"End":1,"Speaker":0,"Content":"네"}]')]
    engine = engine_for(openai_server)
    assert engine.transcribe(tone(1.0, 8000), 8000, AsrContext()).text == "네"
    engine.close()
    assert len(openai_server.requests) == 2


def test_two_server_errors_raise_retryable_engine_error(openai_server: ScriptedOpenAI) -> None:
    openai_server.replies = [Reply(status=503, body="{}")]
    engine = engine_for(openai_server)
    with pytest.raises(EngineError) as info:
        engine.transcribe(tone(1.0, 8000), 8000, AsrContext())
    engine.close()
    assert info.value.retryable
    assert len(openai_server.requests) == 2  # the first try and exactly one retry


def test_client_error_is_not_retried(openai_server: ScriptedOpenAI) -> None:
    openai_server.replies = [Reply(status=400, body='{"error":"bad audio"}')]
    engine = engine_for(openai_server)
    with pytest.raises(EngineError) as info:
        engine.transcribe(tone(1.0, 8000), 8000, AsrContext())
    engine.close()
    assert not info.value.retryable
    assert len(openai_server.requests) == 1


def test_slow_server_times_out_as_engine_error(openai_server: ScriptedOpenAI) -> None:
    openai_server.replies = [Reply(content="[]", delay_s=1.5)]
    engine = create({"base_url": openai_server.url, "timeout_s": 0.6}, "k")
    with pytest.raises(EngineError) as info:
        engine.transcribe(tone(1.0, 8000), 8000, AsrContext())
    engine.close()
    assert info.value.retryable
    assert len(openai_server.requests) == 1  # a read timeout spent the budget: no second try


def test_threads_share_keep_alive_connections(openai_server: ScriptedOpenAI) -> None:
    openai_server.replies = [Reply(content='[{"Start":0,"End":1,"Speaker":0,"Content":"네"}]', delay_s=0.05)]
    engine = engine_for(openai_server, max_connections=2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: engine.transcribe(tone(0.5, 8000), 8000, AsrContext()), range(12)))
    engine.close()
    assert [r.text for r in results] == ["네"] * 12
    assert len(openai_server.connections) <= 2  # 12 requests over at most two pooled connections


def test_create_probes_the_server_and_model(openai_server: ScriptedOpenAI) -> None:
    openai_server.models = ("qwen2.5-7b-instruct",)
    with pytest.raises(ConfigError, match=r"k\.model.*'vibevoice' but the vLLM server .* serves 'qwen2.5-7b-instruct'"):
        create({"base_url": openai_server.url}, "k")
    openai_server.models = ("vibevoice",)  # what the plugin's launcher serves; the old example said vibevoice-asr
    with pytest.raises(ConfigError, match="'vibevoice-asr' but .* serves 'vibevoice'"):
        create({"base_url": openai_server.url, "model": "vibevoice-asr"}, "k")
    openai_server.models = ()
    with pytest.raises(EngineUnavailable, match="serves no model yet"):
        create({"base_url": openai_server.url}, "k")
    with pytest.raises(EngineUnavailable, match="no vLLM server"):
        create({"base_url": "http://127.0.0.1:9", "connect_timeout_s": 0.2}, "k")
    create({"base_url": "http://127.0.0.1:9", "probe": False}, "k").close()


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="worker.asr.engines.vibevoice-vllm.retries"):
        create({"retries": 9, "probe": False}, "worker.asr.engines.vibevoice-vllm")
    with pytest.raises(ConfigError, match="unknown key"):
        create({"base_ur": "http://x", "probe": False}, "k")
    with pytest.raises(ConfigError, match="base_url"):
        create({"base_url": "ftp://x", "probe": False}, "k")


def test_api_key_comes_from_the_named_environment_variable(openai_server, monkeypatch) -> None:
    monkeypatch.setenv("VV_KEY", "s3cret")
    engine = engine_for(openai_server, api_key_env="VV_KEY")
    engine.transcribe(tone(0.5, 8000), 8000, AsrContext())
    engine.close()
    assert openai_server.auth_headers == ["Bearer s3cret"]
    assert "s3cret" not in json.dumps(openai_server.requests[0])
