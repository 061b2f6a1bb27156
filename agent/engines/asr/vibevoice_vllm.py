"""`vibevoice-vllm`: client of a vLLM server running the VibeVoice-ASR plugin (OpenAI chat completions).

One utterance per request: 24 kHz WAV as a base64 data URI plus the training-time prompt with the duration
and the call's hotwords; the compact JSON answer is parsed tolerantly (agent/engines/asr/vibevoice_format.py).
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import soundfile as sf

from agent.config_reader import ConfigError, Section
from agent.engines.asr import vibevoice_format as fmt
from agent.engines.asr.base import AsrContext, AsrResult
from agent.engines.errors import EngineError, EngineUnavailable
from agent.media.resample import resample

log = logging.getLogger(__name__)

NAME = "vibevoice-vllm"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
CUT_TAIL_S = 1.0  # output cut with more than this much audio untranscribed: retry with a bigger budget
DEFAULT_MODEL = "vibevoice"  # --served-model-name of the plugin's launcher
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 1.0
DEFAULT_MAX_TOKENS = 1024
DEFAULT_RETRIES = 1
DEFAULT_MAX_CONNECTIONS = 32
# Status codes worth one more try: the server is restarting or momentarily full.
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class VllmAsrOptions:
    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S  # whole-request budget, retries included
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    max_tokens: int = DEFAULT_MAX_TOKENS  # upper cap; short utterances get less (fmt.token_budget)
    retries: int = DEFAULT_RETRIES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Ask the server for its model list at start-up, so a dead server means Vosk instead of failed calls.
    probe: bool = True


def parse_options(options: Mapping[str, Any], key: str) -> VllmAsrOptions:
    s = Section(options, key)
    d = VllmAsrOptions()
    base_url = s.url("base_url", d.base_url)
    opts = VllmAsrOptions(
        base_url=base_url,
        model=s.str("model", d.model),
        api_key=s.secret("api_key"),
        timeout_s=s.float("timeout_s", d.timeout_s, lo=0.5, hi=300),
        connect_timeout_s=s.float("connect_timeout_s", d.connect_timeout_s, lo=0.05, hi=30),
        max_tokens=s.int("max_tokens", d.max_tokens, lo=16, hi=65536),
        retries=s.int("retries", d.retries, lo=0, hi=3),
        max_connections=s.int("max_connections", d.max_connections, lo=1, hi=1024),
        probe=s.bool("probe", d.probe),
    )
    s.done()
    return opts


def wav_data_uri(pcm: np.ndarray, sample_rate: int) -> tuple[str, float]:
    """int16 call audio → (data URI of a 24 kHz 16-bit WAV, duration in seconds)."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
    audio = resample(pcm, sample_rate, fmt.SAMPLE_RATE)
    buf = io.BytesIO()
    sf.write(buf, audio, fmt.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), len(audio) / fmt.SAMPLE_RATE


def build_request(model: str, data_uri: str, duration_s: float, context: str, max_tokens: int) -> dict[str, Any]:
    """The request body the plugin's own tests send (vllm_plugin/tests/test_api.py), non-streaming."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": fmt.SYSTEM_PROMPT},
            {"role": "user", "content": [
                {"type": "audio_url", "audio_url": {"url": data_uri}},
                {"type": "text", "text": fmt.user_prompt(duration_s, context)},
            ]},
        ],
        "max_tokens": fmt.token_budget(duration_s, max_tokens),
        "temperature": 0.0,
        "top_p": 1.0,
        "stream": False,
    }


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""


class VibeVoiceVllmAsr:
    """Thread-safe: one keep-alive connection pool shared by every worker thread."""

    name = NAME

    def __init__(self, options: VllmAsrOptions, *, transport: httpx.BaseTransport | None = None):
        self.options = options
        self.budget_retries = 0  # utterances asked again because fast speech outran max_tokens
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._client = httpx.Client(
            base_url=options.base_url,
            headers=headers,
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=options.max_connections, max_keepalive_connections=options.max_connections
            ),
            transport=transport,
        )

    def probe(self, key: str = "worker.asr.engines.vibevoice-vllm") -> None:
        """EngineUnavailable (→ Vosk) when no server answers; ConfigError (start-up stops, naming the key) when
        one answers but serves other models: a wrong name is a config mistake, not a reason to fall back."""
        try:
            resp = self._client.get("/v1/models", timeout=max(self.options.connect_timeout_s, 2.0))
            resp.raise_for_status()
            served = [m.get("id") for m in resp.json().get("data", [])]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise EngineUnavailable(NAME, f"no vLLM server at {self.options.base_url}: {exc}") from exc
        if not served:
            raise EngineUnavailable(NAME, f"server at {self.options.base_url} serves no model yet")
        if self.options.model not in served:
            raise ConfigError(f"{key}.model", (
                f"is {self.options.model!r} but the vLLM server at {self.options.base_url} serves "
                f"{', '.join(map(repr, served))}; set model to the server's --served-model-name "
                f"(the VibeVoice plugin's launcher serves {DEFAULT_MODEL!r})"))

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        if pcm.size == 0:
            return AsrResult(text="", engine=NAME)
        data_uri, duration_s = wav_data_uri(pcm, sample_rate)
        body = build_request(self.options.model, data_uri, duration_s, context.prompt_text(),
                             self.options.max_tokens)
        deadline = time.monotonic() + self.options.timeout_s
        content, finish = self._post_with_retries(body, deadline, context)
        segments = fmt.parse_transcription(content, duration_s)
        if finish == "length":
            covered = max((seg.end for seg in segments), default=0.0)
            bigger = min(self.options.max_tokens, body["max_tokens"] * 2)
            if covered < duration_s - CUT_TAIL_S and bigger > body["max_tokens"] \
                    and deadline - time.monotonic() > self.options.connect_timeout_s:
                # Fast speech outran the budget (not a loop: the end of the audio is missing): once more, bigger.
                log.warning("vibevoice-vllm output cut at %.1f of %.1f s by max_tokens=%d; retrying with %d",
                            covered, duration_s, body["max_tokens"], bigger, extra={"call_id": context.call_id})
                self.budget_retries += 1
                body = {**body, "max_tokens": bigger}
                content, finish = self._post_with_retries(body, deadline, context)
                segments = fmt.parse_transcription(content, duration_s)
            if finish == "length":
                # Still cut: usually a repetition loop; the parser keeps the complete segments.
                log.warning("vibevoice-vllm output cut by max_tokens=%d", body["max_tokens"],
                            extra={"call_id": context.call_id})
        return fmt.to_result(segments, NAME)

    def _post_with_retries(self, body: dict[str, Any], deadline: float,
                           context: AsrContext) -> tuple[str, str | None]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._post(body, deadline)
            except _Retryable as exc:
                left = deadline - time.monotonic()
                if attempt > self.options.retries or left < self.options.connect_timeout_s:
                    raise EngineError(NAME, f"gave up after {attempt} attempt(s): {exc}", retryable=True) from exc
                log.warning("vibevoice-vllm attempt %d failed (%s); retrying", attempt, exc,
                            extra={"call_id": context.call_id})

    def _post(self, body: dict[str, Any], deadline: float) -> tuple[str, str | None]:
        left = deadline - time.monotonic()
        timeout = httpx.Timeout(left, connect=min(self.options.connect_timeout_s, left))
        try:
            resp = self._client.post("/v1/chat/completions", json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise _Retryable("connect timeout") from exc
            # A read timeout already spent the budget: retrying would only double the caller's silence.
            raise EngineError(NAME, f"no answer within {self.options.timeout_s:.1f} s", retryable=True) from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"transport error: {type(exc).__name__}") from exc
        if resp.status_code in _RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {resp.status_code}") from None
        if resp.status_code != 200:
            raise EngineError(NAME, f"HTTP {resp.status_code}: {resp.text[:200]}", retryable=False)
        try:
            choice = resp.json()["choices"][0]
            content = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EngineError(NAME, "malformed chat completion response", retryable=False) from exc
        return content, choice.get("finish_reason")

    def close(self) -> None:
        self._client.close()


def create(options: Mapping[str, Any], key: str) -> VibeVoiceVllmAsr:
    """Validates `worker.asr.engines.vibevoice-vllm` and, unless `probe: false`, checks the server is up."""
    engine = VibeVoiceVllmAsr(parse_options(options, key))
    if engine.options.probe:
        try:
            engine.probe(key)
        except (EngineUnavailable, ConfigError):
            engine.close()
            raise
    return engine
