"""The LLM's circuit breaker: one per endpoint, shared by every call of the process.

A turn that fails because the server is down (timeout, connection error, 5xx; `llm.server_down`) counts; after
`failures_to_open` such turns the breaker opens and every call's next turns go straight to the scripted policy
without waiting for the model. Time alone never half-opens it (a trial turn against a dead server would cost a
caller the whole `timeout_s` again): a probe thread, off the call path, sends a one-token completion every
`probe_every_s` (bounded by `probe_timeout_s`); once one answers, the breaker half-opens and the next turn tries
the model, whose outcome closes or re-opens it. State and open count are exported with the engines' breakers
(`agent.engines.breaker.BREAKERS`, name "llm <api_base or model>").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.dialog.llm import LlmClient, LlmError, server_down
from agent.dialog.settings import LlmSettings
from agent.engines.breaker import BREAKERS, CLOSED, OPEN, CircuitBreaker

log = logging.getLogger(__name__)

GUARDS: dict[str, LlmGuard] = {}
_registry_lock = threading.Lock()


class LlmGuard:
    """`allow()` before a turn goes to the model, then `success()`, `failure(exc)` or `abandon()`."""

    def __init__(self, breaker: CircuitBreaker, probe: Callable[[], None], *, probe_every_s: float):
        self.breaker = breaker
        self.probe = probe
        self.probe_every_s = probe_every_s
        self.probes = 0  # probes sent since start
        self._prober: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def name(self) -> str:
        return self.breaker.name

    @property
    def state(self) -> str:
        return self.breaker.state

    def allow(self) -> bool:
        return self.breaker.allow()

    def success(self) -> None:
        self.breaker.success()

    def abandon(self) -> None:
        self.breaker.abandon()

    def failure(self, exc: BaseException) -> None:
        if not server_down(exc):
            # A request the server refused (400, 401, 429 …) says nothing about its health.
            self.breaker.abandon()
            return
        self.breaker.failure()
        if self.breaker.state == OPEN:
            self._start_probing()

    def probe_once(self) -> bool:
        """One probe (the prober thread's step; tests call it directly). True when the model answered."""
        self.probes += 1
        try:
            self.probe()
        except LlmError as exc:
            log.info("%s probe: still down (%s)", self.name, exc)
            return False
        self.breaker.half_open()
        return True

    def _start_probing(self) -> None:
        with self._lock:
            if self._prober is not None or self._stop.is_set():
                return
            self._prober = threading.Thread(target=self._probe_loop, name="llm-probe", daemon=True)
            self._prober.start()

    def _probe_loop(self) -> None:
        # Runs until the breaker closes: a half-open trial that fails re-opens it and probing goes on.
        while not self._stop.wait(self.probe_every_s):
            with self._lock:
                if self.breaker.state == CLOSED:
                    self._prober = None
                    return
            if self.breaker.state == OPEN:
                self.probe_once()
        with self._lock:
            self._prober = None

    def stop(self) -> None:
        """Ends the prober (process shutdown, tests) and forgets this endpoint."""
        self._stop.set()
        with _registry_lock:
            if GUARDS.get(self.name) is self:
                del GUARDS[self.name]
                BREAKERS.pop(self.name, None)


def guard_for(client: LlmClient, cfg: LlmSettings) -> LlmGuard:
    """The process's guard for the client's endpoint (every policy built for it shares one breaker)."""
    name = f"llm {client.api_base or client.model}"
    with _registry_lock:
        guard = GUARDS.get(name)
        if guard is None:
            breaker = CircuitBreaker(name, failures_to_open=cfg.failures_to_open, reset_after_s=None)
            BREAKERS[name] = breaker
            guard = GUARDS[name] = LlmGuard(breaker, lambda: client.probe(cfg.probe_timeout_s),
                                             probe_every_s=cfg.probe_every_s)
        return guard
