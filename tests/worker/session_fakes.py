"""Stand-ins for CallSession's tests, following what the session calls: a connection with websockets'
iteration, send, close and state; a scripted VAD (a frame is voice when its first sample is not zero); ASR
engines with `transcribe` (plus `open_utterance` or `open_stream`); an executor that runs each job at once or
holds it until released; and a clock for the ASR timings. No thread, model, socket or audio file is involved."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable
from concurrent.futures import Executor, Future

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from agent.config import VadConfig
from agent.engines.asr.base import AsrContext, AsrResult, AsrSegment
from agent.media import fork_protocol as proto
from agent.worker import session as worker_session
from agent.worker import stream as worker_stream
from agent.worker.session import CallSession
from agent.worker.stats import WorkerStats

RATE = 8000
FRAME = 320  # bytes of a 20 ms mono frame at 8 kHz
ASR_S = 0.75  # clock seconds each transcribe takes
FINAL = "배송 조회해 주세요"  # ends a Korean sentence
OPEN = "반품하려고 하는데"  # clearly goes on
CONTEXT = AsrContext(hotwords=("반품",), language="en", call_id="call-1")
# Turn checks at 240 ms and 400 ms of silence, the fallback at 600 ms; onset after 2 voiced frames, speech after 5.
CFG = VadConfig(min_speech_ms=100, barge_in_ms=40, prefix_pad_ms=40, end_silence_ms=600, pause_ms=100,
                speculative_ms=200, barge_in_confirm_ms=200, sentence_end_ms=240, audio_model_ms=400,
                smart_turn=False, max_utterance_s=30.0)


def voice(n: int) -> bytes:
    return np.full(FRAME // 2 * n, 1000, "<i2").tobytes()


def quiet(n: int) -> bytes:
    return bytes(FRAME * n)


# 80 ms of silence (the last 40 ms become the prefix pad), 300 ms of voice from 0.08 s to 0.38 s, then silence.
TURN = quiet(4) + voice(15) + quiet(40)


class ScriptedVad:
    def is_speech(self, frame: bytes, rate: int) -> bool:
        return np.frombuffer(frame[:2], "<i2")[0] != 0


class Clock:
    now = 100.0

    def perf_counter(self) -> float:
        return self.now


class Pool(Executor):
    """Runs each job at once in the loop's thread; jobs whose function name is in `hold` wait for `release`."""

    def __init__(self, *hold: str) -> None:
        self.hold = set(hold)
        self.jobs: list[str] = []
        self.held: list[tuple[Callable[..., object], tuple, Future]] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future: Future = Future()
        self.jobs.append(getattr(fn, "__name__", ""))
        if self.jobs[-1] in self.hold:
            self.held.append((fn, args, future))
        else:
            _run(fn, args, future)
        return future

    def release(self) -> None:
        self.hold.clear()
        held, self.held = self.held, []
        for fn, args, future in held:
            _run(fn, args, future)


def _run(fn: Callable[..., object], args: tuple, future: Future) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side, as a pool would
        # A pool thread's traceback does not reach the submitting frames; inline it would, and keep them alive.
        future.set_exception(exc.with_traceback(None))


class Engine:
    """`transcribe` answers with the next scripted text (the last one repeats) and takes ASR_S on the clock."""

    name = "scripted"

    def __init__(self, clock: Clock, *texts: str, fail: Exception | None = None) -> None:
        self.clock, self.texts, self.fail = clock, list(texts or [FINAL]), fail
        self.calls: list[tuple[np.ndarray, int, AsrContext]] = []

    def transcribe(self, pcm: np.ndarray, rate: int, context: AsrContext) -> AsrResult:
        self.calls.append((pcm.copy(), rate, context))
        self.clock.now += ASR_S
        if self.fail is not None:
            raise self.fail
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return AsrResult(text, self.name, (AsrSegment(text, 0.1, 0.3, 2),))


class Conn:
    """The worker's side of the fork socket; None queued in `incoming` is FreeSWITCH hanging up."""

    def __init__(self, stuck: bool = False) -> None:
        self.incoming: asyncio.Queue[object] = asyncio.Queue()
        self.sent: list[str] = []
        self.state = State.OPEN
        self.closed: tuple[int, str] | None = None
        self.stuck = stuck
        self.attempts = 0

    def __aiter__(self) -> Conn:
        return self

    async def __anext__(self) -> object:
        item = await self.incoming.get()
        if item is None:
            raise ConnectionClosed(None, None)
        return item

    async def send(self, message: str) -> None:
        self.attempts += 1
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed, self.state = (code, reason), State.CLOSED


class Call:
    def __init__(self, engine: object, *, cfg: VadConfig = CFG, channels: int = 1, pool: Pool | None = None,
                 conn: Conn | None = None, **kw: object) -> None:
        self.conn, self.stats, self.pool, self.channels = conn or Conn(), WorkerStats(), pool or Pool(), channels
        meta = proto.ForkMetadata(call_id="call-1", rate=RATE, lang="en", channels=channels)
        opts: dict = {"asr_timeout_s": 5.0, "allow_injection": False, "hotwords": ("반품",), **kw}
        self.session = CallSession(self.conn, meta, vad_cfg=cfg, engine=engine, executor=self.pool,  # type: ignore
                                   stats=self.stats, **opts)

    async def __aenter__(self) -> Call:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        await self.session.run()
        # The tasks still running the moment the session returns (its own should all have ended).
        self.left = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]

    async def __aexit__(self, *exc: object) -> None:
        await self.hangup()

    def send(self, *messages: object) -> None:
        for m in messages:
            self.conn.incoming.put_nowait(m)

    def audio(self, data: bytes) -> None:
        n = FRAME * self.channels
        self.send(*(data[i:i + n] for i in range(0, len(data), n)))

    @property
    def events(self) -> list[dict]:
        return [json.loads(m) for m in self.conn.sent if '"heartbeat"' not in m]

    async def until(self, done: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not done():
            assert loop.time() < deadline, f"not reached; sent so far: {self.events}"
            if self.task.done():  # the session failed: no need to wait out the deadline
                raise AssertionError(f"the session ended; sent so far: {self.events}") from self.task.exception()
            await asyncio.sleep(0.001)

    async def finals(self, n: int = 1) -> list[dict]:
        await self.until(lambda: len(finals(self.events)) + len(named(self.events, "asr_error")) >= n)
        return finals(self.events)

    async def hangup(self) -> None:
        if not self.task.done():
            self.send(None)
            await self.task


def kinds(events: list[dict]) -> list[str]:
    return [e.get("event") or ("final" if e["data"]["final"] else "partial") for e in events]


def finals(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["type"] == "transcription" and e["data"]["final"]]


def of(events: list[dict], utterance: int) -> list[dict]:
    return [e for e in events if e.get("utterance", e.get("data", {}).get("utterance")) == utterance]


def named(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e.get("event") == name]


def run(main: Callable[[], object]) -> None:
    asyncio.run(main())  # type: ignore[arg-type]


class Scorer:
    def __init__(self, *scores: float | Exception) -> None:
        self.scores = list(scores)
        self.calls: list[tuple[np.ndarray, int]] = []

    def score(self, pcm: np.ndarray, rate: int) -> float:
        self.calls.append((pcm, rate))
        s = self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]
        if isinstance(s, Exception):
            raise s
        return s


def stats_after(stats: WorkerStats, **changed: float) -> dict[str, float]:
    """Every counter zero but the ones named."""
    return {**{k: 0 for k in WorkerStats().as_dict()}, **changed}


def run_call(main: Callable[[], object]) -> Call:
    """Runs a call; a task or future whose failure nobody read (asyncio reports it when freed) fails the test."""
    reported: list[str] = []

    async def checked() -> Call:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx["message"]))
        c = await main()  # type: ignore[misc]
        gc.collect()
        return c

    c = asyncio.run(checked())
    assert reported == []
    return c


def inject(text: object) -> str:
    return json.dumps({"type": "callagent.inject", "text": text}, ensure_ascii=False)


class Decoder:
    def __init__(self, engine: LiveEngine) -> None:
        self.engine, self.checkpoints, self.samples = engine, 0, 0

    def accept(self, pcm: np.ndarray) -> None:
        self.samples += len(pcm)

    def partial(self) -> str:
        return FINAL

    def checkpoint(self) -> str:
        self.checkpoints += 1
        return ""

    def result(self) -> AsrResult:
        return AsrResult(self.engine.final, "live", (AsrSegment(self.engine.final, 0.1, 0.3),))


class LiveEngine(Engine):
    """Decodes while the caller speaks (`open_utterance`) and can close a segment at a pause."""

    live_checkpoints = True
    final = "배송 조회 부탁드려요"

    def open_utterance(self, rate: int, context: AsrContext) -> Decoder:
        assert (rate, context) == (RATE, CONTEXT)
        self.decoders = [*getattr(self, "decoders", []), Decoder(self)]
        return self.decoders[-1]


class Stream:
    def __init__(self) -> None:
        self.fed = 0

    def feed(self, pcm: np.ndarray, rate: int) -> None:
        self.fed += len(pcm)

    def partials(self):  # type: ignore[no-untyped-def]
        yield type("Partial", (), {"transcript": "배송"})()


class StreamEngine(Engine):
    """Streams the whole call (`open_stream`) for partial transcripts; finals still come from `transcribe`."""

    def open_stream(self, context: AsrContext) -> Stream:
        assert context == CONTEXT
        self.stream, self.ended = Stream(), []
        return self.stream

    def end_call(self, call_id: str) -> None:
        self.ended.append(call_id)


class Closed(Conn):
    """A connection whose peer is gone: every send raises, as websockets does after the close."""

    async def send(self, message: str) -> None:
        raise ConnectionClosed(None, None)


# Fixtures for the session tests, imported by name there (autouse applies in each module that imports it).
@pytest.fixture(autouse=True)
def vad(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripted VAD in place of webrtcvad: a frame is voice when its first sample is not zero."""
    monkeypatch.setattr(worker_stream, "WebRtcVad", lambda aggressiveness: ScriptedVad())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(worker_session, "time", c)
    return c
