"""The LLM guard's rules without a server: what counts as a failure, that only a probe half-opens it, one trial
at a time, and one guard per endpoint for the whole process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from agent.dialog.llm import LlmClient, LlmError, LlmTimeout
from agent.dialog.llm_guard import GUARDS, LlmGuard, guard_for
from agent.dialog.settings import LlmSettings
from agent.engines.breaker import BREAKERS, CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class _Status(Exception):
    def __init__(self, status_code: int):
        super().__init__(str(status_code))
        self.status_code = status_code


def http_error(code: int) -> LlmError:
    try:
        raise LlmError("LLM call failed") from _Status(code)
    except LlmError as exc:
        return exc


class Probe:
    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if not self.up:
            raise LlmError("LLM probe failed: APIConnectionError")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts() -> Iterator[tuple[LlmGuard, Probe, Clock]]:
    clock, probe = Clock(), Probe()
    guard = LlmGuard(CircuitBreaker("llm test", failures_to_open=2, reset_after_s=None, clock=clock), probe,
                     probe_every_s=3600)  # the prober thread never fires here; probe_once is called directly
    yield guard, probe, clock
    guard.stop()


def test_down_server_failures_open_it_and_refused_requests_do_not(parts: tuple[LlmGuard, Probe, Clock]) -> None:
    guard, _, _ = parts
    guard.failure(LlmTimeout("deadline"))
    assert guard.state == CLOSED and guard.allow()
    guard.failure(http_error(400))
    guard.failure(http_error(429))
    assert guard.state == CLOSED and guard.breaker.failures == 1
    guard.failure(http_error(502))
    assert guard.state == OPEN and not guard.allow() and guard.breaker.opened == 1


def test_only_a_probe_that_answers_lets_one_turn_try(parts: tuple[LlmGuard, Probe, Clock]) -> None:
    guard, probe, clock = parts
    guard.failure(LlmTimeout("deadline"))
    guard.failure(LlmTimeout("deadline"))
    clock.now += 1e6  # time alone never half-opens it
    assert not guard.allow()
    assert guard.probe_once() is False and guard.state == OPEN and probe.calls == 1
    probe.up = True
    assert guard.probe_once() is True and guard.state == HALF_OPEN
    assert guard.allow() and not guard.allow()  # one trial; the other calls stay on the scripted policy
    guard.abandon()  # the trial turn was cut before it settled: another may try
    assert guard.allow()
    guard.failure(LlmTimeout("deadline"))  # the trial failed: open again at once
    assert guard.state == OPEN and not guard.allow() and guard.breaker.opened == 2
    assert guard.probe_once() and guard.allow()
    guard.success()
    assert guard.state == CLOSED and guard.allow() and guard.allow() and guard.breaker.failures == 0


def test_a_refused_trial_releases_it_without_closing(parts: tuple[LlmGuard, Probe, Clock]) -> None:
    guard, probe, _ = parts
    guard.failure(LlmTimeout("deadline"))
    guard.failure(LlmTimeout("deadline"))
    probe.up = True
    guard.probe_once()
    assert guard.allow()
    guard.failure(http_error(400))
    assert guard.state == HALF_OPEN and guard.allow()


def test_a_probe_does_not_touch_a_closed_breaker(parts: tuple[LlmGuard, Probe, Clock]) -> None:
    guard, probe, _ = parts
    probe.up = True
    assert guard.probe_once() and guard.state == CLOSED


def test_one_guard_per_endpoint() -> None:
    cfg = LlmSettings(model="openai/q", failures_to_open=3)
    a = guard_for(LlmClient(model="openai/q", api_base="http://127.0.0.1:1/v1"), cfg)
    try:
        assert guard_for(LlmClient(model="openai/other", api_base="http://127.0.0.1:1/v1"), cfg) is a
        b = guard_for(LlmClient(model="gpt-4o-mini"), cfg)
        assert b is not a and b.name == "llm gpt-4o-mini"
        assert a.name == "llm http://127.0.0.1:1/v1" and BREAKERS[a.name] is a.breaker
        assert a.breaker.failures_to_open == 3 and a.breaker.reset_after_s is None
        b.stop()
        assert b.name not in GUARDS and b.name not in BREAKERS
    finally:
        a.stop()


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_the_prober_runs_while_open_until_the_breaker_closes() -> None:
    probe = Probe()
    guard = LlmGuard(CircuitBreaker("llm prober", reset_after_s=None), probe, probe_every_s=0.01)
    try:
        assert guard.probes == 0 and guard._prober is None
        guard.failure(LlmTimeout("deadline"))
        prober = guard._prober
        # Never holds the process open at exit; named so a thread dump shows what it is.
        assert prober is not None and prober.daemon and prober.name == "llm-probe"
        assert wait_for(lambda: probe.calls >= 3)
        assert guard.state == OPEN and guard.probes == probe.calls
        probe.up = True
        assert wait_for(lambda: guard.state == HALF_OPEN)
        calls = probe.calls
        assert guard.allow()
        guard.failure(LlmTimeout("deadline"))  # the trial failed: probing goes on
        assert wait_for(lambda: guard.state == HALF_OPEN) and probe.calls > calls
        assert guard.allow()
        guard.success()
        assert wait_for(lambda: guard._prober is None)  # closed: the prober ends
        calls = probe.calls
        time.sleep(0.05)
        assert probe.calls == calls  # and sends nothing more
        guard.failure(LlmTimeout("deadline"))  # a later outage starts a new prober
        assert wait_for(lambda: guard.state == HALF_OPEN)
    finally:
        guard.stop()
    assert wait_for(lambda: guard._prober is None)
    probe.up = False
    guard.success()
    guard.failure(LlmTimeout("deadline"))
    assert guard.state == OPEN and guard._prober is None  # a stopped guard starts no prober


class FakeClient:
    def __init__(self, api_base: str) -> None:
        self.api_base = api_base
        self.model = "openai/q"
        self.timeouts: list[float] = []

    def probe(self, timeout_s: float) -> None:
        self.timeouts.append(timeout_s)


def test_guard_for_probes_the_client_with_the_configured_bounds() -> None:
    client = FakeClient("http://127.0.0.1:2/v1")
    cfg = LlmSettings(model="openai/q", probe_every_s=7.5, probe_timeout_s=1.25)
    guard = guard_for(client, cfg)  # type: ignore[arg-type]
    try:
        assert guard.probe_every_s == 7.5
        guard.failure(LlmTimeout("deadline"))
        assert guard.probe_once() and client.timeouts == [1.25] and guard.state == HALF_OPEN
    finally:
        guard.stop()
