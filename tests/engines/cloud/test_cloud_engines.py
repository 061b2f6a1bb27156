"""Cloud providers by config: Azure text to speech and Google speech to text, each against a local server that
speaks the provider's documented REST API (paths, auth, formats, answers and errors), keys from the environment."""

from __future__ import annotations

import base64
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from agent.config import TtsConfig
from agent.engines import breaker
from agent.engines.asr import google
from agent.engines.asr.base import AsrContext
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts import azure
from agent.engines.tts.registry import create_tts
from agent.engines.tts.speaker import Speaker
from agent.engines.tts.spool import Spool

KEY = "test-key-123"
AZURE_RATES = {"raw-8khz-16bit-mono-pcm": 8000, "raw-16khz-16bit-mono-pcm": 16000, "raw-24khz-16bit-mono-pcm": 24000}


@dataclass
class Provider:
    url: str = ""
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def azure_server() -> Iterator[Provider]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body.decode()})
            if self.path != "/cognitiveservices/v1":
                return self._reply(404, b"")
            if self.headers.get("Ocp-Apim-Subscription-Key") != KEY:
                return self._reply(401, b"")
            fmt = self.headers.get("X-Microsoft-OutputFormat", "")
            if self.headers.get("Content-Type") != "application/ssml+xml" or fmt not in AZURE_RATES:
                return self._reply(400, b"bad request")
            if state.status != 200:
                return self._reply(state.status, b"busy")
            try:
                voice = ET.fromstring(body).find("voice")
            except ET.ParseError:
                return self._reply(400, b"invalid SSML")
            text = "".join(voice.itertext()) if voice is not None else ""
            pcm = np.full(int(AZURE_RATES[fmt] * 0.05 * len(text)), 1000, dtype="<i2")  # 50 ms per character
            self._reply(200, pcm.tobytes(), "audio/x-wav")

        def _reply(self, status: int, data: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server, state.url = _serve(Handler)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def google_server() -> Iterator[Provider]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            url = urlparse(self.path)
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": url.path, "query": parse_qs(url.query), "json": data})
            if url.path != "/v1/speech:recognize":
                return self._json(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
            if parse_qs(url.query).get("key") != [KEY]:
                return self._json(403, {"error": {"code": 403, "message": "API key not valid",
                                                  "status": "PERMISSION_DENIED"}})
            if state.status != 200:
                return self._json(state.status, {"error": {"code": state.status, "status": "UNAVAILABLE"}})
            config = data["config"]
            if config.get("encoding") != "LINEAR16" or not config.get("sampleRateHertz"):
                return self._json(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}})
            pcm = np.frombuffer(base64.b64decode(data["audio"]["content"]), dtype="<i2")
            if not np.abs(pcm).any():
                return self._json(200, {})  # silence: no results at all, as the API answers
            seconds = pcm.size / config["sampleRateHertz"]
            phrases = [p for c in config.get("speechContexts", []) for p in c["phrases"]]
            said = f"{phrases[0]} 쿠폰 써도 되나요" if phrases else "쿠폰 써도 되나요"
            self._json(200, {"results": [
                {"alternatives": [{"transcript": said, "confidence": 0.93}], "resultEndTime": f"{seconds / 2:.3f}s",
                 "languageCode": config["languageCode"].lower()},
                {"alternatives": [{"transcript": " 감사합니다", "confidence": 0.9}],
                 "resultEndTime": f"{seconds:.3f}s"}]})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server, state.url = _serve(Handler)
    yield state
    server.shutdown()
    server.server_close()


def test_azure_speaks_the_spoken_korean_form_in_ssml(azure_server: Provider, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CA_AZURE_KEY", KEY)
    engine = azure.create({"endpoint": f"{azure_server.url}/cognitiveservices/v1", "api_key_env": "CA_AZURE_KEY",
                           "sample_rate": "24000"}, "tts.engines.azure")
    speaker = Speaker(engine, Spool(tmp_path), voice="ko", max_chunk_chars=60)
    [chunk] = list(speaker.speak("call-1", "u1", "결제 금액은 12,000원 & 배송비 <무료>입니다.", 8000))
    request = azure_server.requests[0]
    assert request["headers"]["X-Microsoft-OutputFormat"] == "raw-24khz-16bit-mono-pcm"
    root = ET.fromstring(request["body"])
    voice = root.find("voice")
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "ko-KR"
    assert voice is not None and voice.get("name") == "ko-KR-SunHiNeural"
    assert voice.text == "결제 금액은 만 이천 원 & 배송비 <무료>입니다." == chunk.tts_text
    assert chunk.duration_s == pytest.approx(0.05 * len(chunk.tts_text), rel=0.02)
    list(speaker.speak("call-1", "u2", "Thank you for calling.", 8000))
    assert ET.fromstring(azure_server.requests[1]["body"]).find("voice").get("name") == "en-US-JennyNeural"
    engine.close()


def test_azure_errors_and_keys(azure_server: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CA_AZURE_KEY", raising=False)
    with pytest.raises(EngineUnavailable, match="CA_AZURE_KEY is not set"):
        azure.create({"region": "koreacentral", "api_key_env": "CA_AZURE_KEY"}, "k")
    monkeypatch.setenv("CA_AZURE_KEY", KEY)
    with pytest.raises(EngineUnavailable, match="region"):
        azure.create({"api_key_env": "CA_AZURE_KEY"}, "k")
    wrong = azure.AzureTts(azure.AzureTtsOptions(endpoint=f"{azure_server.url}/cognitiveservices/v1"), "nope")
    with pytest.raises(EngineError, match="HTTP 401") as err:
        list(wrong.synthesize("네", "ko"))
    assert not err.value.retryable
    azure_server.status = 503
    engine = azure.AzureTts(azure.AzureTtsOptions(endpoint=f"{azure_server.url}/cognitiveservices/v1"), KEY)
    with pytest.raises(EngineError, match="HTTP 503") as err:
        list(engine.synthesize("네", "ko"))
    assert err.value.retryable
    dead = azure.AzureTts(azure.AzureTtsOptions(endpoint="http://127.0.0.1:9/cognitiveservices/v1"), KEY)
    with pytest.raises(EngineError, match="unreachable") as err:
        list(dead.synthesize("네", "ko"))
    assert err.value.retryable


def test_azure_by_config_is_wrapped_so_an_outage_falls_back(azure_server: Provider,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SPEECH_KEY", KEY)
    engine = create_tts(TtsConfig(engine="azure", options={
        "azure": {"endpoint": f"{azure_server.url}/cognitiveservices/v1"}, "fake": {}}))
    assert isinstance(engine, breaker.FailoverTts) and engine.name == "azure"
    assert engine.language_voices["en"] == "en-US-JennyNeural"
    assert sum(c.pcm.size for c in engine.synthesize("안녕하세요", "ko")) == int(16000 * 0.05 * 5)
    engine.close()


def test_google_transcribes_with_hotwords_and_language(google_server: Provider,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CA_GOOGLE_KEY", KEY)
    engine = google.create({"endpoint": google_server.url, "api_key_env": "CA_GOOGLE_KEY"}, "worker.asr.engines.google")
    pcm = (8000 * np.sin(np.arange(16000 * 2) / 10)).astype(np.int16)
    result = engine.transcribe(pcm, 16000, AsrContext(hotwords=("하늘마켓", "쿠폰"), language="ko", call_id="c"))
    sent = google_server.requests[0]["json"]
    assert sent["config"] == {"encoding": "LINEAR16", "sampleRateHertz": 16000, "languageCode": "ko-KR",
                              "enableAutomaticPunctuation": True, "model": "phone_call",
                              "speechContexts": [{"phrases": ["하늘마켓", "쿠폰"]}]}
    assert np.array_equal(np.frombuffer(base64.b64decode(sent["audio"]["content"]), "<i2"), pcm)
    assert result.text == "하늘마켓 쿠폰 써도 되나요 감사합니다" and result.engine == "google"
    assert [(s.start, s.end) for s in result.segments] == [(0.0, 1.0), (1.0, 2.0)]
    english = engine.transcribe(pcm[:8000], 8000, AsrContext(language="en"))
    assert google_server.requests[1]["json"]["config"]["languageCode"] == "en-US"
    assert "speechContexts" not in google_server.requests[1]["json"]["config"] and english.text
    assert engine.transcribe(np.zeros(1600, np.int16), 16000, AsrContext()).text == ""  # no "results" key
    engine.close()


def test_google_errors_and_keys(google_server: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CA_GOOGLE_KEY", raising=False)
    with pytest.raises(EngineUnavailable, match="CA_GOOGLE_KEY is not set"):
        google.create({"api_key_env": "CA_GOOGLE_KEY"}, "k")
    pcm = np.full(1600, 500, np.int16)
    wrong = google.GoogleAsr(google.GoogleAsrOptions(endpoint=google_server.url), "nope")
    with pytest.raises(EngineError, match="HTTP 403") as err:
        wrong.transcribe(pcm, 16000, AsrContext())
    assert not err.value.retryable
    google_server.status = 503
    engine = google.GoogleAsr(google.GoogleAsrOptions(endpoint=google_server.url), KEY)
    with pytest.raises(EngineError, match="HTTP 503") as err:
        engine.transcribe(pcm, 16000, AsrContext())
    assert err.value.retryable
    # A failing cloud recogniser hands the utterance to the CPU engine (the registry wraps it like this).
    from agent.engines.asr.fake import FakeAsr

    failover = breaker.FailoverAsr(engine, lambda: FakeAsr(text="로컬"), breaker.CircuitBreaker("asr google"))
    assert failover.transcribe(pcm, 16000, AsrContext()).text == "로컬"
