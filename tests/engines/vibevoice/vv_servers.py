"""Real loopback servers for the VibeVoice client engines (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message; None with status 200 means a raw `body`
    body: str = ""
    delay_s: float = 0.0
    finish_reason: str = "stop"


@dataclass
class ScriptedOpenAI:
    """Answers /v1/chat/completions with `replies` in order (the last one repeats) and records each body."""

    replies: list[Reply] = field(default_factory=lambda: [Reply(content="[]")])
    models: tuple[str, ...] = ("vibevoice",)
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    url: str = ""

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _handler(script: ScriptedOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pooling is observable

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [{"id": m} for m in script.models]}))
            else:
                self._send(404, "{}")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append(body)
            script.auth_headers.append(self.headers.get("Authorization"))
            script.connections.add(self.client_address)
            reply = script.next_reply()
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.content is None:
                self._send(reply.status, reply.body)
                return
            self._send(reply.status, json.dumps({
                "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                             "message": {"role": "assistant", "content": reply.content}}],
            }))

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A client that gives up mid-answer (the timeout tests) is expected, not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def start_openai() -> tuple[ScriptedOpenAI, ThreadingHTTPServer, threading.Thread]:
    script = ScriptedOpenAI()
    server = QuietServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    return script, server, thread


@dataclass
class FakeStreamingAsr:
    """Speaks `WS /v1/stream` as the ASR-Streaming server does: JSON config, float32 LE frames, "end";
    one JSON per `chunk_s` of audio, then `{"done": true, …}`. `fail_after_chunks` sends `{"error"}`."""

    chunk_s: float = 0.5  # the real checkpoints use 2.0 or 2.93 s; shorter keeps the tests fast
    sample_rate: int = 24000
    fail_after_chunks: int | None = None
    configs: list[dict[str, Any]] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)  # per stream
    peaks: list[float] = field(default_factory=list)
    url: str = ""

    def handle(self, ws: Any) -> None:
        self.configs.append(json.loads(ws.recv(timeout=5)))
        chunk = int(self.chunk_s * self.sample_rate)
        pending, total, sent, peak = 0, 0, 0, 0.0
        for message in ws:
            if message == "end":
                break
            audio = np.frombuffer(message, dtype="<f4")
            peak = max(peak, float(np.abs(audio).max(initial=0.0)))
            pending += audio.size
            total += audio.size
            while pending >= chunk:
                pending -= chunk
                if self.fail_after_chunks is not None and sent >= self.fail_after_chunks:
                    ws.send(json.dumps({"error": "CUDA out of memory"}))
                    return
                ws.send(json.dumps({"chunk": sent, "text": f"Speaker 0: 말{sent}", "segments": []},
                                   ensure_ascii=False))
                sent += 1
        if pending:
            ws.send(json.dumps({"chunk": sent, "text": f"말{sent}"}, ensure_ascii=False))
            sent += 1
        self.samples.append(total)
        self.peaks.append(peak)
        words = " ".join(f"말{i}" for i in range(sent))
        ws.send(json.dumps({"done": True, "total_chunks": sent, "text": f"Speaker 0: {words}", "srt": "",
                            "segments": [{"Start": 0.0, "End": total / self.sample_rate, "Speaker": 0,
                                          "Content": words}]}, ensure_ascii=False))

    def process_request(self, connection: Any, request: Any) -> Any:
        if request.path == "/v1/config":
            return connection.respond(HTTPStatus.OK, json.dumps({
                "sample_rate": self.sample_rate, "chunk_seconds": self.chunk_s, "chunk_frames": 15,
                "lookahead_frames": 4, "window_samples": 0, "max_audio_windows": 512}))
        return None


def start_streaming(fake: FakeStreamingAsr) -> tuple[Any, threading.Thread]:
    from websockets.sync.server import serve

    server = serve(fake.handle, "127.0.0.1", 0, process_request=fake.process_request, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    return server, thread
