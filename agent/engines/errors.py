"""Errors every engine raises at its boundary, so callers decide retry vs. hand-off without knowing the engine."""

from __future__ import annotations


class EngineError(RuntimeError):
    """An engine failed. `retryable` says whether the same request may succeed on a second try."""

    def __init__(self, engine: str, message: str, *, retryable: bool = False):
        super().__init__(f"{engine}: {message}")
        self.engine = engine
        self.retryable = retryable


class EngineUnavailable(EngineError):
    """The engine cannot start here (model files or GPU missing); a fallback engine should take over."""
