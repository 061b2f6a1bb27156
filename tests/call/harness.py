"""A whole stack on loopback for call tests: real worker, real controller, real PostgreSQL, the simulator."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.call.controller import ControllerThread
from agent.call.session import CallDeps
from agent.config import Config, parse_config
from agent.dialog.policy import CallInfo, Escalate, Filler, Say
from agent.dialog.state import DialogState
from agent.engines.asr.fake import FakeAsr
from agent.engines.tts.cache import PromptCache
from agent.engines.tts.espeak import EspeakTts
from agent.engines.tts.speaker import Speaker
from agent.engines.tts.spool import Spool
from agent.ops.stats import ControllerStats
from agent.sim import FreeSwitchSim
from agent.store.calls import CallStore, list_calls
from agent.store.db import Database
from agent.worker.server import WorkerThread


class EchoConversation:
    """A tiny policy so call tests check the controller, not the dialog room. Its history is a real
    DialogState, so what the controller settles (heard text, discarded turns) is what a test reads."""

    def __init__(self, call: CallInfo | None = None, *, first_say_delay_s: float = 0.0,
                 summary_delay_s: float = 0.0) -> None:
        self.state = DialogState(call=call or CallInfo(call_id="test"), pack=None,  # type: ignore[arg-type]
                                 clock=time.monotonic)
        self.received: list[tuple[str, str]] = []  # (text, source) of every turn asked
        self.first_say_delay_s = first_say_delay_s
        self.summary_delay_s = summary_delay_s
        self.heard: list[str] = []

    def greeting(self) -> str | None:
        return None

    def respond(self, text: str, source: str) -> Iterator[Any]:
        self.received.append((text, source))
        self.state.add_caller(text)
        if "상담원" in text:
            yield Escalate("caller_requested", summary="고객이 상담원 연결을 요청함", priority=2)
            return
        msg = self.state.begin_agent()
        if "환불 내역" in text:  # a slow tool: the filler covers the wait
            yield Filler("잠시만요, 확인해 보겠습니다.")
            time.sleep(0.5)
        if self.first_say_delay_s:
            time.sleep(self.first_say_delay_s)
        for line in (f"네, {text} 말씀이시군요.",
                     "주문하신 상품은 어제 출발했고 오늘 오후에 도착할 예정입니다. "
                     "배송 기사님이 도착 전에 연락드릴 거예요."):
            self.state.add_agent(line, msg)
            yield Say(line)

    def agent_heard(self, said: str, heard: str) -> None:
        raise AssertionError("the controller settles turns by id")

    def settle_turn(self, turn_id: str, heard: str) -> None:
        self.heard.append(heard)
        self.state.settle_turn(turn_id, heard)

    def discard_turn(self, turn_id: str) -> None:
        self.state.discard_turn(turn_id)

    @property
    def history(self) -> list[tuple[str, str]]:
        return [(m["role"], m.get("content") or "") for m in self.state.history]

    def summary(self) -> str:
        if self.summary_delay_s:
            time.sleep(self.summary_delay_s)
        return "테스트 요약"

    def close(self) -> None:
        pass


class EchoPolicy:
    name = "echo"

    def __init__(self, **options: float) -> None:
        self.options = options
        self.conversations: list[EchoConversation] = []

    def open(self, call: CallInfo) -> EchoConversation:
        conv = EchoConversation(call, **self.options)
        self.conversations.append(conv)
        return conv


@dataclass
class Stack:
    cfg: Config
    deps: CallDeps
    worker: WorkerThread | None
    controller: ControllerThread
    policy: Any

    def sim(self, **kwargs: Any) -> FreeSwitchSim:
        return FreeSwitchSim(("127.0.0.1", self.controller.port), **kwargs)

    def stop(self) -> None:
        self.controller.stop()
        if self.worker is not None:
            self.worker.stop()
        self.deps.store.close()


def make_stack(tmp_path: Path, db: Database | None, *, policy: Any = None, worker: bool = True,
               fork_url: str | None = None, overrides: dict[str, Any] | None = None,
               asr: Any = None) -> Stack:
    raw: dict[str, Any] = {"worker": {"allow_text_injection": True},
                           "controller": {"fork_connect_timeout_s": 2.0}}
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    cfg = parse_config(raw, base_dir=str(tmp_path))
    cfg = dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, listen=("127.0.0.1", 0)))
    worker_thread = WorkerThread(cfg, asr or FakeAsr(text="")).start() if worker else None
    url = fork_url or f"ws://127.0.0.1:{worker_thread.port if worker_thread else 9}"
    cfg = dataclasses.replace(cfg, controller=dataclasses.replace(cfg.controller, fork_url=url))
    engine = EspeakTts()
    deps = CallDeps(
        cfg=cfg, policy=policy or EchoPolicy(),
        speaker=Speaker(engine, Spool(cfg.path(cfg.tts.spool_dir)), voice="ko", max_chunk_chars=60),
        prompts=PromptCache(engine, cfg.path(cfg.tts.cache_dir), voice="ko"),
        store=CallStore(db, cfg.path(cfg.store.spool_dir)), stats=ControllerStats(),
    )
    controller = ControllerThread(deps).start()
    return Stack(cfg, deps, worker_thread, controller, deps.policy)


def stored_call(stack: Stack, db: Database) -> dict[str, Any]:
    """The one call in the test database, once everything submitted so far is written."""
    assert stack.deps.store.flush(10)
    (call,) = list_calls(db, 1)
    return call
