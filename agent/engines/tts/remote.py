"""Client of the TTS worker (agent/engines/tts/server.py), used by the controller when `tts.worker_url` is a URL.

`speak()` is the controller's path: the worker writes WAVs at the call's rate into the shared spool and
this yields their paths as they land, so playback starts on the first one. `synthesize()` reads them back
as AudioChunks, for callers that want PCM (a cache warm-up); it needs the spool to be readable here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf

from agent.config import TtsConfig
from agent.dialog.language import of_reply
from agent.dialog.speakable import speakable
from agent.engines.breaker import BREAKERS, CircuitBreaker, Lazy
from agent.engines.errors import EngineError, EngineUnavailable
from agent.engines.tts.base import AudioChunk, TtsEngine
from agent.engines.tts.chunker import split_sentences
from agent.engines.tts.speaker import Speaker, SpokenChunk
from agent.engines.tts.spool import Spool

log = logging.getLogger(__name__)
NAME = "tts-remote"
DEFAULT_CONNECT_TIMEOUT_S = 1.0
# Longest wait for the next line: the first chunk (queueing + first audio) or the gap between two WAVs.
DEFAULT_CHUNK_TIMEOUT_S = 10.0
DEFAULT_RATE = 8000


@dataclass(frozen=True)
class RemoteChunk:
    path: str  # absolute path in the spool, as the worker wrote it
    index: int
    duration_s: float
    synth_ms: float  # ms from the worker receiving the request to this WAV being complete


class RemoteTts:
    """Thread-safe; one keep-alive pool shared by all calls."""

    name = NAME

    def __init__(self, base_url: str, *, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 chunk_timeout_s: float = DEFAULT_CHUNK_TIMEOUT_S, max_connections: int = 64,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(chunk_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    def health(self) -> dict[str, Any]:
        """The worker's /healthz; EngineUnavailable when it does not answer."""
        try:
            resp = self._client.get("/healthz")
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineUnavailable(NAME, f"no TTS worker at {self.base_url}: {exc}") from exc

    def speak(self, call_id: str, utt_id: str, text: str, voice: str, rate: int = DEFAULT_RATE
              ) -> Iterator[RemoteChunk]:
        """Yields each spooled WAV as the worker reports it. Closing the iterator early (barge-in) drops
        the connection, which stops the worker's generation for this utterance."""
        body = {"call_id": call_id, "utt_id": utt_id, "text": text, "voice": voice, "rate": rate}
        try:
            with self._client.stream("POST", "/v1/speak", json=body) as resp:
                if resp.status_code != 200:
                    raise _status_error(resp)
                done = False
                for raw in resp.iter_lines():
                    if not raw.strip():
                        continue
                    line = json.loads(raw)
                    if "error" in line:
                        raise EngineError(NAME, f"worker: {line['error']}", retryable=bool(line.get("retryable")))
                    if line.get("done"):
                        done = True
                        break
                    yield RemoteChunk(path=line["path"], index=int(line["index"]),
                                      duration_s=float(line["duration_s"]), synth_ms=float(line["synth_ms"]))
                if not done:
                    raise EngineError(NAME, "worker stream ended without its done line", retryable=True)
        except httpx.TimeoutException as exc:
            raise EngineError(NAME, f"worker timed out ({type(exc).__name__})", retryable=True) from exc
        except httpx.TransportError as exc:
            raise EngineError(NAME, f"worker unreachable ({type(exc).__name__})", retryable=True) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(NAME, f"malformed worker line: {exc}", retryable=False) from exc

    def synthesize(self, text: str, voice: str, *, call_id: str = "remote", rate: int = DEFAULT_RATE
                   ) -> Iterator[AudioChunk]:
        """TtsEngine-compatible: speaks into the spool and reads each WAV back."""
        for chunk in self.speak(call_id, uuid.uuid4().hex, text, voice, rate):
            try:
                pcm, file_rate = sf.read(chunk.path, dtype="int16")
            except (OSError, RuntimeError) as exc:
                raise EngineError(NAME, f"spooled chunk unreadable here: {exc}", retryable=False) from exc
            yield AudioChunk(pcm=pcm, sample_rate=file_rate)

    def close(self) -> None:
        self._client.close()


def _status_error(resp: httpx.Response) -> EngineError:
    resp.read()
    try:
        data = resp.json()
        message, retryable = str(data.get("error")), bool(data.get("retryable"))
    except (ValueError, AttributeError):
        message, retryable = resp.text[:200], resp.status_code >= 500
    return EngineError(NAME, f"HTTP {resp.status_code}: {message}", retryable=retryable)


class RemoteSpeaker:
    """The controller's Speaker when TTS runs in `callagent tts-worker`: the same `speak()` contract, with
    the text split here so each spooled file is tied to the sentence it speaks (heard-text tracking).

    A sentence the worker cannot speak (down, crashed, timed out) is spoken here by the CPU engine
    (`fallback`, espeak-ng unless given), and a circuit breaker keeps later sentences local until the
    worker answers again: a worker that dies mid-call costs no silence.
    """

    def __init__(self, client: RemoteTts, spool: Spool, *, voice: str, max_chunk_chars: int,
                 first_chunk_chars: int | None = 30, voices: dict[str, str] | None = None,
                 fallback: Callable[[], TtsEngine] | None = None, breaker: CircuitBreaker | None = None):
        self.client = client
        self.spool = spool  # shared with the worker; the controller removes a call's files at hangup
        self.voice = voice
        self.voices = dict(voices or {})
        self.max_chunk_chars = max_chunk_chars
        self.first_chunk_chars = first_chunk_chars
        self.breaker = breaker or BREAKERS.setdefault("tts remote", CircuitBreaker("tts remote"))
        self._local = Lazy(lambda: Speaker((fallback or _espeak)(), spool, voice=voice,
                                            max_chunk_chars=max_chunk_chars, first_chunk_chars=None))

    def speak(self, call_id: str, utt_id: str, text: str, rate: int, *,
              language: str | None = None) -> Iterator[SpokenChunk]:
        index = 0
        pieces = split_sentences(text, self.max_chunk_chars, first_max_chars=self.first_chunk_chars)
        for n, piece in enumerate(pieces):
            lang = language or of_reply(piece)
            voice = self.voices.get(lang, self.voice)
            said = speakable(piece, lang)  # the worker's Speaker leaves an already spoken form unchanged
            if self.breaker.allow():
                got, settled = 0, False
                try:
                    for k, chunk in enumerate(self.client.speak(call_id, f"{utt_id}-{n}", said, voice, rate)):
                        # The sentence is credited to its first file: remote parts arrive without knowing
                        # which is last.
                        yield SpokenChunk(path=Path(chunk.path), text=piece if k == 0 else "", index=index,
                                          duration_s=chunk.duration_s, synth_ms=chunk.synth_ms,
                                          tts_text=said if k == 0 else "")
                        index += 1
                        got += 1
                    self.breaker.success()
                    settled = True
                    continue
                except EngineError as exc:
                    self.breaker.failure()
                    settled = True
                    log.warning("tts worker failed on a sentence (%s); speaking it here", exc)
                    if got:
                        continue  # part of it played: repeating the start would be worse than the gap
                finally:
                    if not settled:
                        self.breaker.abandon()
            local = self._local.get().speak_stream(call_id, f"{utt_id}-{n}-local", [piece], rate, language=lang)
            for spoken in local:
                yield dataclasses.replace(spoken, index=index)
                index += 1


def _espeak() -> TtsEngine:
    from agent.engines.tts.registry import FALLBACK_ENGINE, build_engine

    return build_engine(FALLBACK_ENGINE, {})


def from_config(cfg: TtsConfig) -> RemoteTts:
    """The client for `tts.worker_url`; call only when it is an URL (not "local")."""
    if not cfg.worker_url.startswith(("http://", "https://")):
        raise ValueError(f"tts.worker_url is {cfg.worker_url!r}, not an URL")
    return RemoteTts(cfg.worker_url)
