"""The only importer of litellm: streaming chat with tool calls under a hard deadline, a short non-streamed
completion (summaries), and embeddings. litellm is imported lazily: it takes seconds to import.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_litellm: Any = None
_import_lock = threading.Lock()
# Provider-reported tokens per (model, "prompt" | "completion") since start, for metrics; per call: `on_usage`.
TOKEN_COUNTS: Counter[tuple[str, str]] = Counter()
_usage_lock = threading.Lock()


class LlmError(RuntimeError):
    """The model call failed (HTTP error, bad reply, provider down)."""


class LlmTimeout(LlmError):
    """No complete answer before the turn's deadline."""


# litellm / openai exception classes that mean the server is unreachable or stalled (any provider).
_DOWN_CLASSES = frozenset({"APIConnectionError", "APITimeoutError", "Timeout", "ServiceUnavailableError",
                           "InternalServerError"})


def server_down(exc: BaseException) -> bool:
    """True when `exc` says the model server is down (timeout, connection error, 5xx), not that one request
    was bad (400, 401, 404, a 429 quota): only the former counts towards the LLM's circuit breaker."""
    if isinstance(exc, LlmTimeout):
        return True
    cause = exc.__cause__ if isinstance(exc, LlmError) and exc.__cause__ is not None else exc
    if isinstance(cause, (ConnectionError, TimeoutError)):
        return True
    status = getattr(cause, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return True
    return any(k.__name__ in _DOWN_CLASSES for k in type(cause).__mro__)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it

    def args(self) -> dict[str, Any]:
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _lib() -> Any:
    global _litellm
    with _import_lock:
        if _litellm is None:
            # litellm otherwise downloads a model price list at import; calls stay on the configured host.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_TELEMETRY", "False")
            import litellm

            litellm.suppress_debug_info = True
            litellm.drop_params = True  # a provider that lacks a parameter ignores it rather than failing
            litellm.telemetry = False
            _litellm = litellm
    return _litellm


def preload() -> None:
    """Imports litellm now (at start-up) so the first call does not pay for it."""
    _lib()


class LlmClient:
    """One configured model. `stream()` yields text pieces, then one final list of ToolCall."""

    def __init__(self, *, model: str, api_base: str | None = None, api_key: str | None = None,
                 temperature: float = 0.3, max_tokens: int = 300):
        self.model = model
        self.api_base = api_base
        # OpenAI-compatible servers (vLLM) often need no key, but the client insists on one.
        self.api_key = api_key or ("none" if api_base else None)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def _kwargs(self, timeout_s: float) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "temperature": self.temperature,
                              "max_tokens": self.max_tokens, "timeout": max(0.1, timeout_s), "num_retries": 0}
        if self.api_base:
            kw["api_base"] = self.api_base
        if self.api_key:
            kw["api_key"] = self.api_key
        return kw

    def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None, *,
               deadline: float, clock: Callable[[], float] = time.monotonic,
               tool_choice: str | None = None,
               on_usage: Callable[[int, int], None] | None = None) -> Iterator[str | list[ToolCall]]:
        """Streams one completion. Raises LlmTimeout when `deadline` (on `clock`) passes, LlmError on failure.

        The blocking HTTP read runs in a helper thread so that the deadline holds even when the server
        stalls mid-stream; an abandoned helper ends at its own HTTP timeout.
        """
        lib = _lib()
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        cancel = threading.Event()
        kwargs = self._kwargs(deadline - clock())
        # include_usage: the last chunk carries the prompt/completion token counts (cost per call).
        kwargs.update(messages=list(messages), stream=True, stream_options={"include_usage": True})
        if tools:
            kwargs["tools"] = list(tools)
            if tool_choice:
                kwargs["tool_choice"] = tool_choice

        def produce() -> None:
            try:
                response = lib.completion(**kwargs)
                for chunk in response:
                    if cancel.is_set():
                        break
                    events.put(("chunk", chunk))
                events.put(("end", None))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which maps it
                events.put(("error", exc))

        threading.Thread(target=produce, name="llm-stream", daemon=True).start()
        calls: dict[int, dict[str, str]] = {}
        try:
            while True:
                remaining = deadline - clock()
                if remaining <= 0:
                    raise LlmTimeout("LLM turn deadline passed")
                try:
                    kind, value = events.get(timeout=remaining)
                except queue.Empty:
                    raise LlmTimeout("LLM turn deadline passed") from None
                if kind == "error":
                    raise LlmError(f"LLM call failed: {type(value).__name__}") from value
                if kind == "end":
                    break
                _note_usage(value, self.model, on_usage)
                text = _absorb(value, calls)
                if text:
                    yield text
        finally:
            cancel.set()
        yield [ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"])
               for i, c in sorted(calls.items()) if c["name"]]

    def probe(self, timeout_s: float) -> None:
        """A one-token completion, bounded by `timeout_s`: the health probe of an open circuit breaker (it
        exercises the served model name and the generator, not only the HTTP front). Raises LlmError."""
        kw = self._kwargs(timeout_s)
        kw.update(messages=[{"role": "user", "content": "ping"}], max_tokens=1, stream=True)
        try:
            for _ in _lib().completion(**kw):  # streamed like a turn: the same server path
                pass
        except Exception as exc:  # noqa: BLE001 - mapped to our error type
            raise LlmError(f"LLM probe failed: {type(exc).__name__}") from exc

    def complete(self, messages: Sequence[dict[str, Any]], *, timeout_s: float) -> str:
        """A short non-streamed answer (summaries); bounded by `timeout_s` the same way as `stream`."""
        deadline = time.monotonic() + timeout_s
        parts = [p for p in self.stream(messages, deadline=deadline) if isinstance(p, str)]
        return "".join(parts).strip()


def _note_usage(chunk: Any, model: str, on_usage: Callable[[int, int], None] | None) -> None:
    """Counts the tokens of a chunk that carries `usage` (the last one, with include_usage)."""
    usage = getattr(chunk, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
    completion = int(getattr(usage, "completion_tokens", 0) or 0) if usage is not None else 0
    if not (prompt or completion):
        return
    with _usage_lock:
        TOKEN_COUNTS[(model, "prompt")] += prompt
        TOKEN_COUNTS[(model, "completion")] += completion
    if on_usage is not None:
        on_usage(prompt, completion)


def _absorb(chunk: Any, calls: dict[int, dict[str, str]]) -> str:
    """Text of one `chat.completion.chunk`; tool-call fragments are accumulated into `calls` by index."""
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    if delta is None:
        return ""
    for tc in getattr(delta, "tool_calls", None) or []:
        index = getattr(tc, "index", None)
        slot = calls.setdefault(index if isinstance(index, int) else len(calls),
                                {"id": "", "name": "", "arguments": ""})
        if getattr(tc, "id", None):
            slot["id"] = tc.id
        fn = getattr(tc, "function", None)
        if fn is not None:
            if getattr(fn, "name", None):
                slot["name"] = fn.name
            if getattr(fn, "arguments", None):
                slot["arguments"] += fn.arguments
    return getattr(delta, "content", None) or ""


def embed(texts: Sequence[str], *, model: str, api_base: str | None = None, api_key: str | None = None,
          timeout_s: float = 30.0) -> list[list[float]]:
    """Embeddings for `texts` through litellm (any provider it knows, or an OpenAI-compatible api_base)."""
    lib = _lib()
    kwargs: dict[str, Any] = {"model": model, "input": list(texts), "timeout": timeout_s}
    if api_base:
        kwargs["api_base"] = api_base
    if api_key or api_base:
        kwargs["api_key"] = api_key or "none"
    try:
        response = lib.embedding(**kwargs)
    except Exception as exc:  # noqa: BLE001 - mapped to our error type
        raise LlmError(f"embedding call failed: {type(exc).__name__}") from exc
    data = response["data"] if isinstance(response, dict) else response.data
    vectors = [item["embedding"] if isinstance(item, dict) else item.embedding for item in data]
    if len(vectors) != len(texts):
        raise LlmError("embedding reply has the wrong number of vectors")
    return [list(map(float, v)) for v in vectors]
