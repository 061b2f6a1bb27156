"""`azure`: Azure AI Speech text to speech over its REST API, for Korean neural voices (ko-KR-SunHiNeural…).

Wire (learn.microsoft.com, "Text to speech REST API"): `POST https://<region>.tts.speech.microsoft.com/
cognitiveservices/v1` with `Ocp-Apim-Subscription-Key`, `Content-Type: application/ssml+xml`,
`X-Microsoft-OutputFormat: raw-16khz-16bit-mono-pcm` (or 8 kHz / 24 kHz) and an SSML body; the answer is the
raw PCM. The key comes from the environment variable named by `api_key_env`, never from the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import numpy as np

from agent.config_reader import Section
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts.base import AudioChunk

log = logging.getLogger(__name__)

NAME = "azure"
FORMATS = {8000: "raw-8khz-16bit-mono-pcm", 16000: "raw-16khz-16bit-mono-pcm", 24000: "raw-24khz-16bit-mono-pcm"}
_RETRYABLE = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class AzureTtsOptions:
    region: str = ""
    endpoint: str = ""  # overrides the region's URL (sovereign clouds, a proxy, tests)
    api_key_env: str = "AZURE_SPEECH_KEY"
    voice: str = "ko-KR-SunHiNeural"  # used when the call's voice is not an Azure voice name
    english_voice: str = "en-US-JennyNeural"
    sample_rate: int = 16000
    timeout_s: float = 5.0


def parse_options(options: Mapping[str, Any], key: str) -> AzureTtsOptions:
    s = Section(options, key)
    d = AzureTtsOptions()
    opts = AzureTtsOptions(
        region=s.str("region", d.region), endpoint=s.str("endpoint", d.endpoint),
        api_key_env=s.str("api_key_env", d.api_key_env), voice=s.str("voice", d.voice),
        english_voice=s.str("english_voice", d.english_voice),
        sample_rate=int(s.choice("sample_rate", tuple(str(r) for r in FORMATS), str(d.sample_rate))),
        timeout_s=s.float("timeout_s", d.timeout_s, lo=0.5, hi=60),
    )
    s.done()
    return opts


def ssml(text: str, voice: str) -> str:
    lang = "-".join(voice.split("-")[:2]) or "ko-KR"
    return (f"<speak version='1.0' xml:lang={quoteattr(lang)}><voice name={quoteattr(voice)}>"
            f"{escape(text)}</voice></speak>")


class AzureTts:
    name = NAME

    def __init__(self, options: AzureTtsOptions, api_key: str, *, transport: httpx.BaseTransport | None = None):
        self.options = options
        self.cache_tag = f"azure:{options.sample_rate}"
        self.language_voices = {"ko": options.voice, "en": options.english_voice}
        url = options.endpoint or f"https://{options.region}.tts.speech.microsoft.com/cognitiveservices/v1"
        self._url = url
        self._client = httpx.Client(headers={"Ocp-Apim-Subscription-Key": api_key,
                                             "Content-Type": "application/ssml+xml",
                                             "X-Microsoft-OutputFormat": FORMATS[options.sample_rate],
                                             "User-Agent": "callagent"},
                                    timeout=options.timeout_s, transport=transport)

    def voice_for(self, voice: str) -> str:
        """An Azure voice name ("ko-KR-InJoonNeural") as given; anything else (espeak's "ko") → the default."""
        if voice.count("-") >= 2 and voice.endswith("Neural"):
            return voice
        return self.options.english_voice if voice.startswith("en") else self.options.voice

    def synthesize(self, text: str, voice: str) -> Iterator[AudioChunk]:
        if not text.strip():
            return
        try:
            resp = self._client.post(self._url, content=ssml(text, self.voice_for(voice)).encode("utf-8"))
        except httpx.TimeoutException as exc:
            raise EngineError(NAME, f"no answer within {self.options.timeout_s:.1f} s", retryable=True) from exc
        except httpx.TransportError as exc:
            raise EngineError(NAME, f"unreachable ({type(exc).__name__})", retryable=True) from exc
        if resp.status_code != 200:
            raise EngineError(NAME, f"HTTP {resp.status_code}: {resp.text[:200]}",
                              retryable=resp.status_code in _RETRYABLE)
        body = resp.content
        if len(body) % 2:
            body = body[:-1]
        yield AudioChunk(pcm=np.frombuffer(body, dtype="<i2").astype(np.int16), sample_rate=self.options.sample_rate)

    def close(self) -> None:
        self._client.close()


def create(options: Mapping[str, Any], key: str) -> AzureTts:
    """EngineUnavailable (→ espeak-ng) without a key in the environment or a region/endpoint to call."""
    opts = parse_options(options, key)
    api_key = os.environ.get(opts.api_key_env, "")
    if not api_key:
        raise EngineUnavailable(NAME, f"environment variable {opts.api_key_env} is not set")
    if not (opts.region or opts.endpoint):
        raise EngineUnavailable(NAME, f"{key}.region (or endpoint) is not set")
    return AzureTts(opts, api_key)
