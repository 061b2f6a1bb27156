"""The TTS worker (`callagent tts-worker`): a TTS engine behind a small HTTP API, for the GPU host.

`POST /v1/speak {call_id, utt_id, text, voice, rate}` answers newline-delimited JSON, one line per WAV as
soon as it is written into the spool FreeSWITCH plays from: `{"path", "index", "duration_s", "synth_ms"}`,
then `{"done": true, "chunks", "audio_s", "total_ms"}`, or `{"error", "retryable"}`. `GET /healthz`.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import soundfile as sf

from agent.config import TtsConfig
from agent.engines.errors import EngineError
from agent.engines.tts.base import AudioChunk, TtsEngine
from agent.media.resample import StreamResampler

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ("127.0.0.1", 8095)
# After the first WAV (sent as soon as it exists), chunks are merged to at least this length: 133 ms
# files would mean a playback command every 133 ms.
MIN_WAV_MS = 300
MAX_TEXT_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024
RATES = (8000, 16000, 24000, 48000)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class SpeakRequest:
    call_id: str
    utt_id: str
    text: str
    voice: str
    rate: int


def parse_speak(body: bytes) -> SpeakRequest:
    """Validates a /v1/speak body; ids become file names, so they may not carry path separators."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError("body is not JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    for key in ("call_id", "utt_id"):
        if not isinstance(data.get(key), str) or not _ID_RE.match(data[key]) or ".." in data[key]:
            raise ValueError(f"{key} must be letters, digits, '_', '-' or '.'")
    text, voice, rate = data.get("text"), data.get("voice", ""), data.get("rate", 8000)
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text must be 1–{MAX_TEXT_CHARS} characters")
    if not isinstance(voice, str):
        raise ValueError("voice must be a string")
    if rate not in RATES or isinstance(rate, bool):
        raise ValueError(f"rate must be one of {RATES}")
    return SpeakRequest(data["call_id"], data["utt_id"], text, voice, rate)


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    """Written beside its final name and renamed, so FreeSWITCH never opens a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, pcm, rate, format="WAV", subtype="PCM_16")
    os.replace(tmp, path)


class TtsWorker:
    """Turns engine chunks into spooled WAVs at the call's rate. `speak` is independent of HTTP."""

    def __init__(self, engine: TtsEngine, spool: Path, *, min_wav_ms: int = MIN_WAV_MS, max_concurrent: int = 16):
        self.engine = engine
        self.spool = Path(spool)
        self.min_wav_ms = min_wav_ms
        self.max_concurrent = max_concurrent
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._active = 0
        self._lock = threading.Lock()
        self._takes_call_id = "call_id" in inspect.signature(engine.synthesize).parameters

    @property
    def active(self) -> int:
        return self._active

    def try_begin(self) -> bool:
        if not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            self._active += 1
        return True

    def end(self) -> None:
        with self._lock:
            self._active -= 1
        self._slots.release()

    def speak(self, req: SpeakRequest) -> Iterator[dict[str, Any]]:
        """One line per written WAV, then the `done` line. Closing the iterator stops the engine."""
        started = time.monotonic()
        directory = self.spool / req.call_id
        directory.mkdir(parents=True, exist_ok=True)
        resampler: StreamResampler | None = None
        pending: list[np.ndarray] = []
        index, audio_s = 0, 0.0

        def emit(pcm: np.ndarray) -> dict[str, Any]:
            nonlocal index, audio_s
            path = directory / f"{req.utt_id}-{index:03d}.wav"
            _write_wav(path, pcm, req.rate)
            line = {"path": str(path), "index": index, "duration_s": round(pcm.size / req.rate, 4),
                    "synth_ms": round((time.monotonic() - started) * 1000, 1)}
            index += 1
            audio_s += pcm.size / req.rate
            return line

        chunks = self._synthesize(req)
        try:
            for chunk in chunks:
                if resampler is None:
                    resampler = StreamResampler(chunk.sample_rate, req.rate, dtype=np.int16)
                pending.append(resampler.process(chunk.pcm.astype(np.int16, copy=False)))
                size = sum(p.size for p in pending)
                if size and (index == 0 or size * 1000 >= self.min_wav_ms * req.rate):
                    yield emit(np.concatenate(pending))
                    pending = []
            if resampler is not None:
                pending.append(resampler.flush())
            tail = np.concatenate(pending) if pending else np.zeros(0, np.int16)
            if tail.size:
                yield emit(tail)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a client that hung up (barge-in) stops generation here
        yield {"done": True, "chunks": index, "audio_s": round(audio_s, 4),
               "total_ms": round((time.monotonic() - started) * 1000, 1)}

    def _synthesize(self, req: SpeakRequest) -> Iterator[AudioChunk]:
        if self._takes_call_id:
            return iter(self.engine.synthesize(req.text, req.voice, call_id=req.call_id))  # type: ignore[call-arg]
        return iter(self.engine.synthesize(req.text, req.voice))


def _handler(worker: TtsWorker) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked replies on keep-alive connections

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("tts-worker %s", fmt % args)

        def _json(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _chunk(self, line: dict[str, Any]) -> None:
            data = json.dumps(line, ensure_ascii=False).encode() + b"\n"
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_GET(self) -> None:
            if self.path != "/healthz":
                self._json(404, {"error": "not found"})
                return
            self._json(200, {"ok": True, "engine": getattr(worker.engine, "name", "?"), "active": worker.active,
                             "max_concurrent": worker.max_concurrent})

        def do_POST(self) -> None:
            if self.path != "/v1/speak":
                self._json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                self._json(413 if length else 400, {"error": "body missing or too large"})
                return
            try:
                req = parse_speak(self.rfile.read(length))
            except ValueError as exc:
                self._json(400, {"error": str(exc), "retryable": False})
                return
            if not worker.try_begin():
                self._json(503, {"error": "busy", "retryable": True})
                return
            try:
                self._speak(req)
            finally:
                worker.end()

        def _speak(self, req: SpeakRequest) -> None:
            lines = worker.speak(req)
            try:
                # The first line decides the status: an engine that fails before any audio is a 5xx.
                first = next(lines)
            except EngineError as exc:
                log.warning("tts-worker: engine failed before audio: %s", exc, extra={"call_id": req.call_id})
                self._json(503 if exc.retryable else 500, {"error": str(exc), "retryable": exc.retryable})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                self._chunk(first)
                for line in lines:
                    self._chunk(line)
            except EngineError as exc:
                self._chunk({"error": str(exc), "retryable": exc.retryable})
            except (BrokenPipeError, ConnectionResetError):
                log.info("tts-worker: client left mid-utterance", extra={"call_id": req.call_id})
                self.close_connection = True
                return
            finally:
                lines.close()
            try:
                self.wfile.write(b"0\r\n\r\n")
            except ConnectionError:
                self.close_connection = True

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A controller that hangs up mid-utterance (barge-in) is routine, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("tts-worker: connection from %s dropped", client_address)
            return
        log.exception("tts-worker: request from %s failed", client_address)


def make_server(worker: TtsWorker, listen: tuple[str, int] = DEFAULT_LISTEN) -> ThreadingHTTPServer:
    """A bound server; run `serve_forever()` on a thread (tests) or call `serve` (the CLI)."""
    return _Server(listen, _handler(worker))


def listen_address(cfg: TtsConfig) -> tuple[str, int]:
    """The worker listens where the controller's `tts.worker_url` points, else on 127.0.0.1:8095."""
    if cfg.worker_url.startswith(("http://", "https://")):
        parts = urlsplit(cfg.worker_url)
        return parts.hostname or DEFAULT_LISTEN[0], parts.port or DEFAULT_LISTEN[1]
    return DEFAULT_LISTEN


def serve(cfg: TtsConfig, engine: TtsEngine, spool: str | Path, *, listen: tuple[str, int] | None = None) -> None:
    """Serves until SIGTERM/SIGINT (systemd stop), then closes the engine."""
    worker = TtsWorker(engine, Path(spool))
    server = make_server(worker, listen or listen_address(cfg))
    def on_signal(signum: int, _frame: Any) -> None:
        # shutdown() waits for serve_forever, which runs on this thread: call it from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    log.info("tts-worker: %s on %s:%d, spool %s", getattr(engine, "name", "?"), *server.server_address[:2], spool)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        engine.close()
