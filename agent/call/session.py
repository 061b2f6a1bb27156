"""CallSession: one per channel; owns the call's state and every greenlet it starts (freeswitch.md §1.3–§1.7).

Flow: connect → myevents + `event plain` → linger → answer → greeting (cached, not interruptible) → fork start →
events. Turns and escalation run in their own greenlets so the event loop keeps reading PLAYBACK and fork events
(barge-in needs them while a reply is being generated). The socket is closed only after CHANNEL_HANGUP_COMPLETE
or after `exit` following a transfer (§1.7).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import gevent
import soundfile
from gevent.event import Event as GEvent
from gevent.pool import Group

from agent.call.channel import ChannelInfo
from agent.call.record import CallRecord
from agent.call.speech import Playout, SpeechHandle
from agent.call.threads import call_in_thread
from agent.config import Config
from agent.dialog.policy import CallInfo, Policy
from agent.esl import commands as cmd
from agent.esl.codec import Event
from agent.esl.connection import Closed, Disconnect, EslConnection
from agent.esl.errors import CallGone, EslError
from agent.store.calls import CallStore, now_utc

log = logging.getLogger(__name__)

LINGER_S = 30  # bounded, so a dead controller cannot keep FreeSWITCH's channel alive forever (§1.7)


@dataclass
class CallDeps:
    cfg: Config
    policy: Policy
    speaker: Any  # agent.engines.tts.speaker.Speaker
    prompts: Any  # agent.engines.tts.cache.PromptCache
    store: CallStore
    stats: Any = None  # agent.ops.stats.ControllerStats (optional)


class CallSession:
    def __init__(self, conn: EslConnection, deps: CallDeps):
        self.conn = conn
        self.deps = deps
        self.cfg = deps.cfg.controller
        self.group = Group()
        self.playout = Playout()
        self.channel: ChannelInfo | None = None
        self.record: CallRecord | None = None
        self.conv: Any = None
        self.state = "connecting"  # connecting | active | escalating | ending | transferred | gone
        self.fork_connected = GEvent()
        self.turn: Any = None  # agent.call.turn.Turn in progress
        self._finished: dict[str, GEvent] = {}
        self.hangup_cause: str | None = None
        self.asr_errors = 0
        self.last_activity = time.monotonic()  # caller speech, DTMF, or the agent finishing a sentence
        self.reprompted = False

    @property
    def uuid(self) -> str:
        return self.channel.uuid if self.channel else "?"

    # lifecycle -----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._setup()
            self._event_loop()
        except CallGone:
            log.info("call %s: socket gone", self.uuid)
        except Exception:  # noqa: BLE001 - one call's failure must never reach the server or other calls
            log.exception("call %s failed", self.uuid)
            if self.state == "active":
                self.escalate("agent_error", failure=True)
                self._event_loop()
        finally:
            self._teardown()

    def _setup(self) -> None:
        reply = self.conn.send("connect")
        self.channel = ChannelInfo.from_connect(reply.headers)
        self.record = CallRecord(self.deps.store, self.channel)
        self.conn.command("myevents")
        self.conn.command(cmd.event_subscription())
        self.conn.command(f"linger {LINGER_S}")
        industry = self.channel.industry
        self.conv = self.deps.policy.open(CallInfo(
            call_id=self.channel.uuid, caller=self.channel.caller, destination=self.channel.destination,
            industry=industry, variables=dict(self.channel.variables),
        ))
        greeting = self.conv.greeting() or self.cfg.greeting
        greeting_path = self.deps.prompts.get(greeting, self.channel.read_rate)
        self.conn.sendmsg("answer")
        self.record.answered()
        self.state = "active"
        self.play_file(greeting, greeting_path, kind="greeting", interruptible=False)
        self._start_fork(industry)

    def _event_loop(self) -> None:
        while True:
            item = self.conn.events.get()
            if isinstance(item, Closed):
                return
            if isinstance(item, Disconnect):
                if item.disposition != "linger":
                    self._gone("disconnect-notice")
                continue
            try:
                self._on_event(item)
            except EslError as exc:
                log.warning("call %s: ESL error while handling %s: %s", self.uuid, item.name, exc)

    def _teardown(self) -> None:
        self.group.kill(block=False)
        if self.record is not None and not self.record.ended:
            self.record.end("failed" if self.state in ("active", "connecting") else "caller_hangup",
                            hangup_cause=self.hangup_cause)
        if self.conv is not None:
            try:
                self.conv.close()
            except Exception:  # noqa: BLE001 - closing dialog state must not mask the call's end
                log.exception("call %s: closing the conversation failed", self.uuid)
        self.conn.close()
        if self.channel is not None:
            self.deps.speaker.spool.cleanup(self.channel.uuid)

    def _gone(self, why: str) -> None:
        if self.state == "gone":
            return
        previous, self.state = self.state, "gone"
        if self.turn is not None:
            self.turn.cancel()
        for greenlet in list(self.group):
            if greenlet is not gevent.getcurrent():
                greenlet.kill(block=False)
        if self.record is not None and not self.record.ended:
            reason = {"ending": "agent_hangup", "transferred": "transferred"}.get(previous, "caller_hangup")
            self.record.end(reason, hangup_cause=self.hangup_cause)
        log.info("call %s: ended (%s)", self.uuid, why)

    # events -------------------------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        # After a restart FreeSWITCH may deliver stale events of other channels first (§9): ignore them.
        if ev.uuid and self.channel and ev.uuid != self.channel.uuid:
            return
        name = ev.name
        if name in ("PLAYBACK_START", "PLAYBACK_STOP"):
            self._on_playback(ev, name == "PLAYBACK_START")
        elif name == "DTMF":
            self._caller_active()
            digit = ev.get("DTMF-Digit")
            self.record.event("dtmf", digit=digit)
            if digit == self.cfg.dtmf_human_digit and self.state == "active":
                self.escalate("dtmf", priority=3)
        elif name == "CUSTOM":
            self._on_fork_event(ev.subclass, ev.json_body() or {})
        elif name == "CHANNEL_HANGUP":
            self.hangup_cause = ev.get("Hangup-Cause") or None
            self._gone("hangup")
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.hangup_cause = ev.get("Hangup-Cause") or self.hangup_cause
            self._gone("hangup complete")
            self.conn.close()  # the channel is released only once we close (§1.7)

    def _on_playback(self, ev: Event, started: bool) -> None:
        handle = self.playout.get(ev.get("utt_id"))
        chunk = ev.get("chunk")
        if handle is None or not chunk.isdigit():
            return
        now = time.monotonic()
        if started:
            handle.on_start(int(chunk), now)
        else:
            handle.on_stop(int(chunk), ev.get("Playback-Status"), now)
        self.check_finished(handle)

    def _on_fork_event(self, subclass: str, body: dict[str, Any]) -> None:
        if subclass == "mod_audio_fork::connect":
            self.fork_connected.set()
            self.record.event("fork_connected")
        elif subclass in ("mod_audio_fork::connect_failed", "mod_audio_fork::error",
                          "mod_audio_fork::disconnect"):
            self._worker_lost(f"{subclass.split('::')[1]}: {body.get('reason', '')}".strip(": "))
        elif subclass == "mod_audio_fork::buffer_overrun":
            self.record.event("fork_buffer_overrun")
        elif subclass == "mod_audio_fork::transcription":
            if body.get("final", True):
                self._on_transcript(body)
        elif subclass == "mod_audio_fork::json":
            kind = body.get("event")
            if kind in ("speech_onset", "speech_started"):  # onset: early enough to barge in within ~200 ms
                self._on_speech_started(body)
            elif kind == "asr_error":
                self._on_asr_error(body)

    def _caller_active(self) -> None:
        self.last_activity = time.monotonic()
        self.reprompted = False

    def _on_speech_started(self, body: dict[str, Any]) -> None:
        self._caller_active()
        if self.state != "active" or not self.playout.interruptible_now:
            return
        t0 = time.monotonic()
        self.conn.api(cmd.uuid_break(self.uuid))
        for handle in self.playout.active():
            handle.cut(t0)
            self.check_finished(handle)
        if self.turn is not None:
            self.turn.cancel()
        break_ms = (time.monotonic() - t0) * 1000
        self.record.event("barge_in", utterance=body.get("utterance"), break_ms=round(break_ms, 2))
        if self.deps.stats is not None:
            self.deps.stats.barge_ins += 1

    def _on_transcript(self, data: dict[str, Any]) -> None:
        text = str(data.get("text", "")).strip()
        self._caller_active()
        if not text or self.state != "active":
            return
        self.asr_errors = 0
        from agent.call.turn import Turn  # the turn module imports this one for types

        if self.turn is not None:
            self.turn.cancel()  # the caller spoke again: the newest words win
        self.turn = Turn(self, data, time.monotonic())
        self.group.spawn(self.turn.run)

    def _on_asr_error(self, body: dict[str, Any]) -> None:
        self.asr_errors += 1
        self.record.event("asr_error", reason=body.get("reason", ""), retryable=body.get("retryable"))
        if self.state != "active":
            return
        if self.asr_errors >= 2 or not body.get("retryable", False):
            self.escalate("asr_failed", failure=True)
        else:
            self.group.spawn(self.say_prompt, "죄송합니다, 잘 듣지 못했습니다. 다시 한 번 말씀해 주시겠어요?")

    # fork ---------------------------------------------------------------------------------------------

    def _start_fork(self, industry: str) -> None:
        url = f"{self.cfg.fork_url.rstrip('/')}/{self.uuid}"
        meta = {"call_id": self.uuid, "rate": self.cfg.fork_rate, "industry": industry or "general",
                "tenant": self.channel.tenant, "lang": "ko"}
        reply = self.conn.api(cmd.uuid_audio_fork_start(self.uuid, url, self.cfg.fork_rate, self.cfg.fork_bug,
                                                         meta), check=False)
        if not cmd.api_ok(reply):
            self._worker_lost(f"fork start refused: {reply.strip()}")
            return
        self.group.spawn(self._fork_watchdog)
        self.group.spawn(self._silence_watchdog)

    def _fork_watchdog(self) -> None:
        if not self.fork_connected.wait(self.cfg.fork_connect_timeout_s):
            self._worker_lost("no connect from the worker")

    def _silence_watchdog(self) -> None:
        """Dead air from the caller's side: ask once, then hand the call to a human."""
        limit = self.cfg.no_input_timeout_s
        while self.state == "active":
            gevent.sleep(min(1.0, limit / 4))
            busy = self.playout.speaking or (self.turn is not None and not self.turn.done)
            if busy:
                self.last_activity = time.monotonic()
                continue
            if time.monotonic() - self.last_activity < limit:
                continue
            self.record.event("no_input", reprompted=self.reprompted)
            if self.reprompted:
                self.escalate("no_input")
                return
            self.reprompted = True
            self.say_prompt(self.cfg.no_input_prompt)
            self.last_activity = time.monotonic()

    def _worker_lost(self, reason: str) -> None:
        self.record.event("fork_failed", reason=reason)
        log.warning("call %s: speech worker unavailable (%s); handing the caller to a human", self.uuid, reason)
        if self.state == "active":
            self.escalate("worker_unavailable", failure=True)

    # speaking -----------------------------------------------------------------------------------------

    def queue_playback(self, handle: SpeechHandle, text: str, path: str, duration_s: float) -> None:
        """Queues one chunk behind what is already playing (freeswitch.md §1.6, §4 "recommended TTS path").

        sendmsg playback with event-lock plays queued chunks strictly in order, like uuid_broadcast, but
        without the 5 lead frames uuid_broadcast reads first: 100 ms less before each chunk starts.
        """
        chunk = handle.add(text, path, duration_s)
        arg = cmd.playback_path(path, {"utt_id": handle.utt_id, "chunk": chunk.index})
        self.conn.sendmsg("playback", arg, event_lock=True, app_uuid=f"{self.uuid}-{handle.utt_id}-{chunk.index}")

    def play_file(self, text: str, path: Any, *, kind: str, interruptible: bool) -> SpeechHandle:
        handle = self.new_handle(kind, interruptible)
        self.queue_playback(handle, text, str(path), soundfile.info(str(path)).duration)
        handle.synthesis_done = True
        return handle

    def say_prompt(self, text: str, *, interruptible: bool = True, kind: str = "prompt") -> SpeechHandle:
        """Speaks a fixed phrase from the prompt cache and records it as an agent turn."""
        path, _ = call_in_thread(self.deps.prompts.get, text, self.channel.read_rate, timeout=10)
        handle = self.play_file(text, path, kind=kind, interruptible=interruptible)
        self.record.turn(self.record.next_turn_seq(), "agent", text, started_at=now_utc(), source=kind)
        return handle

    def new_handle(self, kind: str = "reply", interruptible: bool = True) -> SpeechHandle:
        handle = self.playout.new(kind, interruptible)
        self._finished[handle.utt_id] = GEvent()
        return handle

    def check_finished(self, handle: SpeechHandle) -> None:
        if handle.finished:
            self._finished[handle.utt_id].set()

    def wait_finished(self, handle: SpeechHandle, timeout: float) -> bool:
        self.check_finished(handle)
        return self._finished[handle.utt_id].wait(timeout)

    # escalation and hangup ----------------------------------------------------------------------------

    def escalate(self, reason: str, summary: str = "", priority: int = 5, *, failure: bool = False) -> None:
        """Hands the caller to the human queue; runs in its own greenlet so events keep flowing."""
        if self.state != "active":
            return
        self.state = "escalating"
        if self.deps.stats is not None:
            self.deps.stats.escalations[reason] += 1
        if self.turn is not None and self.turn.greenlet is not gevent.getcurrent():
            self.turn.cancel()
        self.group.spawn(self._escalate, reason, summary, priority, failure)

    def _escalate(self, reason: str, summary: str, priority: int, failure: bool) -> None:
        from agent.call.escalation import transfer_to_human

        transfer_to_human(self, reason, summary, priority, failure)

    def hang_up(self) -> None:
        if self.state not in ("active", "escalating"):
            return
        self.state = "ending"
        self.conn.api(cmd.uuid_kill(self.uuid), check=False)

