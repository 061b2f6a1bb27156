"""`vibevoice-streaming`: client of the VibeVoice-ASR-Streaming server's `WS /v1/stream` (live partials).

Wire (docs/models.md, "ASR-Streaming"): a JSON config first, then binary little-endian float32 PCM at the
checkpoint rate, then the text "end". The server answers one JSON per chunk `{"chunk","text","segments"}`,
then `{"done":true,"text","segments",…}`, or `{"error":…}`. The server keeps per-session state and has no
data parallelism, so each call sticks to one replica (chosen by a stable hash of the call id).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
import numpy as np
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from agent.config_reader import ConfigError, Section
from agent.engines.asr import vibevoice_format as fmt
from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.engines.errors import EngineError, EngineUnavailable
from agent.media.resample import StreamResampler

log = logging.getLogger(__name__)

NAME = "vibevoice-streaming"
DEFAULT_BASE_URL = "http://127.0.0.1:8002"  # 8000: vLLM ASR, 8001: vLLM LLM (systemd/)
DEFAULT_SAMPLE_RATE = 24000
# Longest wait for the next partial: several chunks (2–3 s each) of a slow server, then give up reading.
PARTIAL_WAIT_S = 30.0


@dataclass(frozen=True)
class StreamingAsrOptions:
    base_urls: tuple[str, ...] = (DEFAULT_BASE_URL,)  # one per GPU replica; a call sticks to one
    connect_timeout_s: float = 2.0
    final_timeout_s: float = 10.0  # after "end": the last chunk's compute plus the server's flush
    max_tokens: int = 256  # per chunk, as the server's config message takes it
    temperature: float = 0.0
    sample_rate: int = DEFAULT_SAMPLE_RATE  # replaced by the server's /v1/config when probed
    probe: bool = True


def parse_options(options: Mapping[str, Any], key: str) -> StreamingAsrOptions:
    s = Section(options, key)
    d = StreamingAsrOptions()
    single = s.str("base_url", None)
    urls = s.str_list("base_urls", None)
    if single and urls:
        raise ConfigError(s.key("base_urls"), "give base_url or base_urls, not both")
    chosen = urls if urls else (single,) if single else d.base_urls
    base_urls = tuple(u.rstrip("/") for u in chosen)
    for url in base_urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(s.key("base_urls" if urls else "base_url"), f"must be http(s):// URLs, got {url!r}")
    opts = StreamingAsrOptions(
        base_urls=base_urls,
        connect_timeout_s=s.float("connect_timeout_s", d.connect_timeout_s, lo=0.05, hi=30),
        final_timeout_s=s.float("final_timeout_s", d.final_timeout_s, lo=0.5, hi=120),
        max_tokens=s.int("max_tokens", d.max_tokens, lo=8, hi=2048),
        temperature=s.float("temperature", d.temperature, lo=0.0, hi=2.0),
        sample_rate=s.int("sample_rate", d.sample_rate, lo=8000, hi=48000),
        probe=s.bool("probe", d.probe),
    )
    s.done()
    return opts


@dataclass(frozen=True)
class Partial:
    """One chunk's answer. `transcript` is everything heard so far in this stream; it reaches the
    controller as a transcription event with `"final": false` (agent/media/fork_protocol.transcript)."""

    chunk: int
    text: str  # this chunk's words, "Speaker N:" removed
    speaker: int | None
    transcript: str


def _ws_url(base_url: str) -> str:
    return "ws" + base_url[len("http"):] + "/v1/stream"


class StreamSession:
    """One live stream: `feed` audio as it arrives, read `partials()`, then `finish()` for the result.

    `feed` and `finish` are for one producer thread; `partials` may be read from another thread, or
    `on_partial` registers a callback that this session's own reader thread calls, so a caller with a shared
    thread pool holds none of its threads for the length of a call.
    """

    def __init__(self, ws: ClientConnection, *, call_id: str, server_rate: int, final_timeout_s: float):
        self.call_id = call_id
        self._ws = ws
        self._server_rate = server_rate
        self._final_timeout_s = final_timeout_s
        self._resampler: StreamResampler | None = None
        self._partials: queue.Queue[Partial | None] = queue.Queue()
        self._texts: list[str] = []
        self._done = threading.Event()
        self._final: dict[str, Any] | None = None
        self._error: EngineError | None = None
        self._ended = False
        self._samples_in = 0  # at the server rate, for the duration of the whole stream
        self._callback: Callable[[Partial], None] | None = None
        self._callback_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"{NAME}-{call_id}", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._done.is_set()

    def feed(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Sends int16 mono call audio; the session's resampler is fixed by the first chunk's rate."""
        if self._ended:
            raise EngineError(NAME, "stream already finished", retryable=False)
        if self._error:
            raise self._error
        if self._resampler is None:
            self._resampler = StreamResampler(sample_rate, self._server_rate, dtype=np.float32)
        elif self._resampler.src_rate != sample_rate:
            raise ValueError(f"stream opened at {self._resampler.src_rate} Hz, got {sample_rate} Hz")
        self._send_audio(self._resampler.process(pcm.astype(np.float32) / 32768.0))

    def _send_audio(self, audio: np.ndarray) -> None:
        if audio.size == 0:
            return
        self._samples_in += audio.size
        try:
            self._ws.send(audio.astype("<f4").tobytes())
        except (WebSocketException, OSError) as exc:
            raise EngineError(NAME, f"stream lost: {type(exc).__name__}", retryable=True) from exc

    def on_partial(self, callback: Callable[[Partial], None]) -> None:
        """Delivers each partial (those already received first) to `callback` on the reader thread."""
        with self._callback_lock:
            self._callback = callback
            waiting: list[Partial] = []
            while True:
                try:
                    item = self._partials.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._partials.put(None)
                    break
                waiting.append(item)
            for item in waiting:
                self._deliver(callback, item)

    def _deliver(self, callback: Callable[[Partial], None], item: Partial) -> None:
        try:
            callback(item)
        except Exception:  # noqa: BLE001 - a consumer's bug must not end the stream
            log.exception("call %s: partial callback failed", self.call_id)

    def partials(self, timeout: float = PARTIAL_WAIT_S) -> Iterator[Partial]:
        """Partial results as they come, until the stream is done; `timeout` bounds each wait."""
        while True:
            try:
                item = self._partials.get(timeout=timeout)
            except queue.Empty:
                return
            if item is None:
                self._partials.put(None)  # let a second reader finish too
                return
            yield item

    def finish(self) -> AsrResult:
        """Flushes with "end" and waits for the final answer (bounded by final_timeout_s)."""
        if not self._ended:
            self._ended = True
            try:
                if self._resampler is not None:
                    self._send_audio(self._resampler.flush())
                self._ws.send("end")
            except (WebSocketException, OSError) as exc:
                if not self._done.is_set():
                    self.close()
                    raise EngineError(NAME, f"stream lost: {type(exc).__name__}", retryable=True) from exc
        if not self._done.wait(self._final_timeout_s):
            self.close()
            raise EngineError(NAME, f"no final result within {self._final_timeout_s:.1f} s", retryable=True)
        self.close()
        if self._error is not None:
            raise self._error
        return self._result(self._final or {})

    def _result(self, final: dict[str, Any]) -> AsrResult:
        duration = self._samples_in / self._server_rate
        raw_segments = final.get("segments")
        segments = fmt.segments_from_objects(raw_segments, duration) if isinstance(raw_segments, list) else []
        if not segments:
            text = final.get("text") if isinstance(final.get("text"), str) else " ".join(self._texts)
            speaker, text = fmt.split_speaker_prefix(text)
            segments = [AsrSegment(text=text, start=0.0, end=duration, speaker=speaker)] if text else []
        return fmt.to_result(segments, NAME)

    def close(self) -> None:
        """Closes the socket (the reader ends and wakes everyone); safe to call twice."""
        try:
            self._ws.close()
        finally:
            self._reader.join(timeout=self._final_timeout_s)

    def _read(self) -> None:
        try:
            for message in self._ws:
                if isinstance(message, bytes):
                    continue
                try:
                    data = json.loads(message)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                if "error" in data:
                    self._error = EngineError(NAME, f"server error: {data['error']}", retryable=False)
                    break
                if data.get("done"):
                    self._final = data
                    break
                if "chunk" in data:
                    self._on_chunk(data)
        except (WebSocketException, OSError) as exc:
            self._error = EngineError(NAME, f"stream lost: {type(exc).__name__}", retryable=True)
        finally:
            if self._final is None and self._error is None:
                self._error = EngineError(NAME, "server closed the stream before the final result",
                                          retryable=True)
            self._done.set()
            self._partials.put(None)

    def _on_chunk(self, data: dict[str, Any]) -> None:
        raw = data.get("text") if isinstance(data.get("text"), str) else ""
        speaker, text = fmt.split_speaker_prefix(raw)
        text = fmt.spoken_text(text)
        if text:
            self._texts.append(text)
        chunk = data["chunk"] if isinstance(data["chunk"], int) else len(self._texts)
        partial = Partial(chunk=chunk, text=text, speaker=speaker, transcript=" ".join(self._texts))
        with self._callback_lock:
            callback = self._callback
            if callback is None:
                self._partials.put(partial)
                return
            self._deliver(callback, partial)


class VibeVoiceStreamingAsr:
    """Thread-safe. `open_stream` is sticky: one live stream per call id, on one replica per call id."""

    name = NAME

    def __init__(self, options: StreamingAsrOptions):
        self.options = options
        self._sessions: dict[str, StreamSession] = {}
        self._lock = threading.Lock()

    def replica(self, call_id: str) -> str:
        """The same call id always maps to the same replica (the server keeps the stream's state)."""
        urls = self.options.base_urls
        return urls[zlib.crc32(call_id.encode()) % len(urls)]

    def open_stream(self, context: AsrContext) -> StreamSession:
        """The call's live stream, opened on first use; a finished one is replaced by a new stream."""
        with self._lock:
            session = self._sessions.get(context.call_id)
            if session is not None and not session.closed:
                return session
        session = self._connect(context)
        with self._lock:
            # A racing opener for the same call keeps the first stream; ours is closed.
            current = self._sessions.get(context.call_id)
            if current is not None and not current.closed:
                session.close()
                return current
            if context.call_id:
                self._sessions[context.call_id] = session
        return session

    def end_call(self, call_id: str) -> None:
        """Closes and forgets the call's stream (the call is gone)."""
        with self._lock:
            session = self._sessions.pop(call_id, None)
        if session is not None:
            session.close()

    def _connect(self, context: AsrContext) -> StreamSession:
        url = _ws_url(self.replica(context.call_id))
        try:
            ws = connect(url, open_timeout=self.options.connect_timeout_s, close_timeout=1.0)
            ws.send(json.dumps({
                "context_info": context.prompt_text(),
                "temperature": self.options.temperature,
                "max_tokens": self.options.max_tokens,
            }, ensure_ascii=False))
        except (WebSocketException, OSError, TimeoutError) as exc:
            raise EngineError(NAME, f"cannot open {url}: {type(exc).__name__}", retryable=True) from exc
        return StreamSession(ws, call_id=context.call_id, server_rate=self.options.sample_rate,
                             final_timeout_s=self.options.final_timeout_s)

    def transcribe(self, pcm: np.ndarray, sample_rate: int, context: AsrContext) -> AsrResult:
        """A whole utterance over a fresh, unshared stream (the call's live stream is left alone)."""
        session = self._connect(context)
        try:
            session.feed(pcm, sample_rate)
            return session.finish()
        finally:
            session.close()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def _server_config(base_url: str, timeout_s: float) -> dict[str, Any]:
    try:
        resp = httpx.get(base_url + "/v1/config", timeout=max(timeout_s, 2.0))
        resp.raise_for_status()
        data = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EngineUnavailable(NAME, f"no ASR-Streaming server at {base_url}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sample_rate"), int):
        raise EngineUnavailable(NAME, f"{base_url}/v1/config has no sample_rate")
    return data


def create(options: Mapping[str, Any], key: str) -> VibeVoiceStreamingAsr:
    """Validates options and, unless `probe: false`, reads every replica's /v1/config (its audio rate)."""
    opts = parse_options(options, key)
    if opts.probe:
        rates = {_server_config(url, opts.connect_timeout_s)["sample_rate"] for url in opts.base_urls}
        if len(rates) != 1:
            raise EngineUnavailable(NAME, f"replicas disagree on the sample rate: {sorted(rates)}")
        opts = replace(opts, sample_rate=rates.pop())
    return VibeVoiceStreamingAsr(opts)
