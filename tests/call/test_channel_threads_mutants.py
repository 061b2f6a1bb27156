"""What the outbound `connect` reply says about the channel (freeswitch.md §1.3: the CHANNEL_DATA dump, its
`variable_*` headers), and blocking work run off the event loop: results, the time measured inside the thread,
timeouts, and a dialog generator closed from the pool even when it is still running."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
import pytest

from agent.call import threads
from agent.call.channel import ChannelInfo
from agent.call.threads import call_in_thread, close_in_thread, iterate_in_thread

UUID = "3f1c2a9e-0d4b-4b8e-9c1a-7e2f5d6a8b90"


def test_the_connect_reply_names_the_channel_its_parties_rate_and_variables():
    info = ChannelInfo.from_connect({
        "Event-Name": "CHANNEL_DATA", "Channel-Unique-ID": "other", "Unique-ID": UUID,
        "Caller-Caller-ID-Number": "01012345678", "Caller-Destination-Number": "15881234",
        "Channel-Read-Codec-Rate": "16000", "variable_callagent_industry": "banking",
        "variable_callagent_tenant": "하늘은행", "variable_sip_from_user": "x", "Other": "y"})
    assert info == ChannelInfo(uuid=UUID, caller="01012345678", destination="15881234", read_rate=16000,
                               variables={"callagent_industry": "banking", "callagent_tenant": "하늘은행",
                                          "sip_from_user": "x"})
    assert info.industry == "banking" and info.tenant == "하늘은행"


def test_the_uuid_comes_from_the_channel_or_its_variable_when_unique_id_is_missing():
    assert ChannelInfo.from_connect({"Channel-Unique-ID": "a", "variable_uuid": "b"}).uuid == "a"
    assert ChannelInfo.from_connect({"variable_uuid": "b"}).uuid == "b"
    with pytest.raises(ValueError, match=r"^connect reply carries no Unique-ID$"):
        ChannelInfo.from_connect({"Caller-Caller-ID-Number": "1"})


@pytest.mark.parametrize("rate,expected", [("8000", 8000), ("16000", 16000), ("48000", 8000), ("", 8000),
                                           ("x16", 8000)])
def test_a_rate_other_than_8_or_16_khz_or_none_yet_is_taken_as_8_khz(rate, expected):
    assert ChannelInfo.from_connect({"Unique-ID": UUID, "Channel-Read-Codec-Rate": rate}).read_rate == expected


def test_a_bare_channel_has_no_parties_no_industry_and_the_default_tenant():
    info = ChannelInfo.from_connect({"Unique-ID": UUID})
    assert (info.caller, info.destination, info.read_rate, dict(info.variables)) == ("", "", 8000, {})
    assert info.industry == "" and info.tenant == "default"


class FakeTime:
    """perf_counter for the pool thread: each reading moves on by `step` seconds."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.t += self.step
        return self.t


def test_call_in_thread_runs_off_the_loop_and_measures_the_time_inside(monkeypatch):
    monkeypatch.setattr(threads, "time", FakeTime(0.25))
    result, ms = call_in_thread(lambda a, b: (a, b, threading.current_thread().name), 1, 2)
    assert result[:2] == (1, 2) and result[2] != threading.current_thread().name
    assert ms == pytest.approx(250.0)


def test_call_in_thread_raises_its_exception_and_times_out():
    def boom() -> None:
        raise KeyError("x")
    with pytest.raises(KeyError):
        call_in_thread(boom)
    release = threading.Event()
    with pytest.raises(gevent.Timeout):
        call_in_thread(release.wait, 5, timeout=0.05)
    release.set()


def test_iterate_in_thread_yields_each_item_with_its_time_inside_the_scope(monkeypatch):
    monkeypatch.setattr(threads, "time", FakeTime(0.1))
    seen: list[tuple[str, bool]] = []
    inside = threading.local()

    @contextmanager
    def scope():
        inside.on = True
        try:
            yield
        finally:
            inside.on = False

    def gen() -> Iterator[str]:
        for x in ("a", "b"):
            seen.append((x, getattr(inside, "on", False)))
            yield x
        seen.append(("end", getattr(inside, "on", False)))

    assert list(iterate_in_thread(gen(), scope=scope)) == [("a", pytest.approx(100.0)), ("b", pytest.approx(100.0))]
    assert seen == [("a", True), ("b", True), ("end", True)]


def test_iterate_in_thread_stops_on_none_items_only_at_the_end():
    assert [x for x, _ in iterate_in_thread(iter([None, 0, ""]))] == [None, 0, ""]


def test_iterate_in_thread_times_out_on_a_step_that_hangs():
    release = threading.Event()

    def gen() -> Iterator[str]:
        yield "first"
        release.wait(5)  # a stream that stops answering mid-reply
        yield "late"

    steps = iterate_in_thread(gen(), timeout=0.05)
    assert next(steps)[0] == "first"
    with pytest.raises(gevent.Timeout):
        next(steps)
    release.set()


def test_close_in_thread_runs_the_generators_finally_in_its_scope():
    closed: list[str] = []
    marker = threading.local()

    @contextmanager
    def scope():
        marker.v = "turn-1"
        yield

    def gen() -> Iterator[int]:
        try:
            yield 1
        finally:
            closed.append(getattr(marker, "v", ""))

    g = gen()
    next(g)
    assert close_in_thread(g, timeout=2, scope=scope) is True and closed == ["turn-1"]
    assert close_in_thread(iter([1]), timeout=2) is True  # nothing to close


def test_close_in_thread_leaves_a_generator_still_running_elsewhere():
    started, release = threading.Event(), threading.Event()

    def gen() -> Iterator[int]:
        started.set()
        release.wait(5)
        yield 1

    g = gen()
    t = threading.Thread(target=next, args=(g,))
    t.start()
    started.wait(2)
    assert close_in_thread(g, timeout=2) is False  # "generator already executing"
    release.set()
    t.join(2)


def test_close_in_thread_gives_up_on_a_finally_that_hangs():
    release = threading.Event()

    def gen() -> Iterator[int]:
        try:
            yield 1
        finally:
            release.wait(5)

    g = gen()
    next(g)
    assert close_in_thread(g, timeout=0.05) is False
    release.set()
