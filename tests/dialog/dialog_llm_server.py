"""A tiny OpenAI-compatible HTTP server for tests: SSE `chat.completion.chunk` streams with text and
tool_call deltas, scripted per request, plus /embeddings. Real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A script step: ("text", "…"), ("tool", call_id, name, args_dict), ("sleep", seconds), ("hang", seconds),
# ("status", http_code).
Step = tuple
Script = Callable[[dict[str, Any], int], list[Step]]


class OpenAIServer:
    def __init__(self, script: Script, port: int = 0):
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.sent: list[tuple[float, str]] = []  # (monotonic time, text) of every text delta written
        self.done_at: list[float] = []  # when each stream finished
        self.usage: list[dict[str, int]] = []  # the usage chunk sent with each stream that asked for one
        self.embeddings: list[list[str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                if self.path.endswith("/embeddings"):
                    outer._embed(self, body)
                    return
                n = len(outer.requests)
                outer.requests.append(body)
                # The client may give up first (a timeout test): nothing to report then.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    outer._chat(self, body, n)

        # A fixed port brings a "restarted" server back at the address a client already uses.
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _chat(self, h: BaseHTTPRequestHandler, body: dict[str, Any], n: int) -> None:
        steps = self.script(body, n)
        for step in steps:
            if step[0] == "status":
                payload = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
                h.send_response(step[1])
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(payload)))
                h.end_headers()
                h.wfile.write(payload)
                return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            data = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": body.get("model", "test"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            h.wfile.write(f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
            h.wfile.flush()

        try:
            chunk({"role": "assistant", "content": ""})
            tool_index = 0
            finish = "stop"
            for step in steps:
                kind = step[0]
                if kind == "text":
                    chunk({"content": step[1]})
                    self.sent.append((time.monotonic(), step[1]))
                elif kind == "tool":
                    _, call_id, name, args = step
                    text = json.dumps(args, ensure_ascii=False)
                    half = len(text) // 2
                    # Arguments arrive in pieces, as real servers send them.
                    chunk({"tool_calls": [{"index": tool_index, "id": call_id, "type": "function",
                                           "function": {"name": name, "arguments": text[:half]}}]})
                    chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": text[half:]}}]})
                    tool_index += 1
                    finish = "tool_calls"
                elif kind in ("sleep", "hang"):
                    time.sleep(step[1])
            chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                # OpenAI's stream usage: one last chunk with empty choices and the request's token counts.
                prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4 + 1
                completion = sum(1 for st in steps if st[0] in ("text", "tool"))
                usage = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": body.get("model", "test"), "choices": [],
                         "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                   "total_tokens": prompt + completion}}
                self.usage.append(usage["usage"])
                h.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
            h.wfile.write(b"data: [DONE]\n\n")
            h.wfile.flush()
            self.done_at.append(time.monotonic())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _embed(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        texts = body.get("input") or []
        texts = [texts] if isinstance(texts, str) else texts
        self.embeddings.append(list(texts))
        data = [{"object": "embedding", "index": i, "embedding": bag_of_chars(t)} for i, t in enumerate(texts)]
        payload = json.dumps({"object": "list", "data": data, "model": body.get("model", "e"),
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)


def bag_of_chars(text: str, dim: int = 64) -> list[float]:
    """A deterministic toy embedding: hashed character counts, L2-normalised."""
    vec = [0.0] * dim
    for ch in text:
        if not ch.isspace():
            vec[ord(ch) % dim] += 1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]
