"""`google`: Google Cloud Speech-to-Text (v1 REST `speech:recognize`) for one finished utterance.

Wire (cloud.google.com/speech-to-text/docs/reference/rest/v1/speech/recognize): `POST
https://speech.googleapis.com/v1/speech:recognize` with the API key as `key=` (from the environment variable
named by `api_key_env`) and `{"config": {"encoding": "LINEAR16", "sampleRateHertz", "languageCode",
"speechContexts": [{"phrases": hotwords}], "enableAutomaticPunctuation"}, "audio": {"content": base64}}`;
the answer is `{"results": [{"alternatives": [{"transcript", "confidence"}], "resultEndTime"}]}` (no
`results` when nothing was said). Synchronous recognition takes up to 60 s of audio.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from agent.config_reader import Section
from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.engines.errors import EngineError, EngineUnavailable

NAME = "google"
MAX_SECONDS = 60.0
MAX_PHRASES = 500  # the API's limit per request
LANGUAGE_CODES = {"ko": "ko-KR", "en": "en-US"}
_RETRYABLE = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class GoogleAsrOptions:
    endpoint: str = "https://speech.googleapis.com"
    api_key_env: str = "GOOGLE_SPEECH_API_KEY"
    model: str = "phone_call"  # the telephony model; "latest_short" for short commands
    timeout_s: float = 10.0


def parse_options(options: Mapping[str, Any], key: str) -> GoogleAsrOptions:
    s = Section(options, key)
    d = GoogleAsrOptions()
    opts = GoogleAsrOptions(endpoint=s.str("endpoint", d.endpoint).rstrip("/"),
                            api_key_env=s.str("api_key_env", d.api_key_env), model=s.str("model", d.model),
                            timeout_s=s.float("timeout_s", d.timeout_s, lo=0.5, hi=120))
    s.done()
    return opts


def build_request(pcm: np.ndarray, sample_rate: int, context: AsrContext, model: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "encoding": "LINEAR16", "sampleRateHertz": sample_rate,
        "languageCode": LANGUAGE_CODES.get(context.language, context.language),
        "enableAutomaticPunctuation": True, "model": model,
    }
    if context.hotwords:
        config["speechContexts"] = [{"phrases": list(context.hotwords[:MAX_PHRASES])}]
    audio = base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii")
    return {"config": config, "audio": {"content": audio}}


def parse_response(data: Any, duration_s: float) -> AsrResult:
    """Best alternative of each result, timed by `resultEndTime` ("1.500s") where present."""
    segments: list[AsrSegment] = []
    start = 0.0
    for result in (data.get("results") or []) if isinstance(data, dict) else []:
        alternatives = result.get("alternatives") or [] if isinstance(result, dict) else []
        text = str(alternatives[0].get("transcript", "")).strip() if alternatives else ""
        end = _seconds(result.get("resultEndTime"), duration_s)
        if text:
            segments.append(AsrSegment(text=text, start=start, end=max(start, end)))
        start = end
    return AsrResult(text=" ".join(s.text for s in segments), engine=NAME, segments=tuple(segments))


def _seconds(value: Any, default: float) -> float:
    try:
        return min(default, float(str(value).rstrip("s")))
    except (TypeError, ValueError):
        return default


class GoogleAsr:
    name = NAME

    def __init__(self, options: GoogleAsrOptions, api_key: str, *, transport: httpx.BaseTransport | None = None):
        self.options = options
        self._client = httpx.Client(base_url=options.endpoint, timeout=options.timeout_s, transport=transport,
                                    headers={"User-Agent": "callagent"})
        self._key = api_key

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        duration_s = pcm.size / sample_rate if sample_rate else 0.0
        if pcm.size == 0:
            return AsrResult(text="", engine=NAME)
        if duration_s > MAX_SECONDS:
            pcm, duration_s = pcm[: int(MAX_SECONDS * sample_rate)], MAX_SECONDS
        body = build_request(pcm, sample_rate, context, self.options.model)
        try:
            resp = self._client.post("/v1/speech:recognize", params={"key": self._key}, json=body)
        except httpx.TimeoutException as exc:
            raise EngineError(NAME, f"no answer within {self.options.timeout_s:.1f} s", retryable=True) from exc
        except httpx.TransportError as exc:
            raise EngineError(NAME, f"unreachable ({type(exc).__name__})", retryable=True) from exc
        if resp.status_code != 200:
            raise EngineError(NAME, f"HTTP {resp.status_code}: {resp.text[:200]}",
                              retryable=resp.status_code in _RETRYABLE)
        try:
            return parse_response(resp.json(), duration_s)
        except (ValueError, AttributeError, IndexError) as exc:
            raise EngineError(NAME, f"malformed answer: {exc}", retryable=False) from exc

    def close(self) -> None:
        self._client.close()


def create(options: Mapping[str, Any], key: str) -> GoogleAsr:
    """EngineUnavailable (→ Vosk) without an API key in the environment."""
    opts = parse_options(options, key)
    api_key = os.environ.get(opts.api_key_env, "")
    if not api_key:
        raise EngineUnavailable(NAME, f"environment variable {opts.api_key_env} is not set")
    return GoogleAsr(opts, api_key)
