"""CallSession: one per channel; owns the call's state and every greenlet it starts (freeswitch.md §1.3–§1.7).

Flow: connect → myevents + `event plain` → linger → answer → greeting (cached, not interruptible) → recording →
fork → events. The verbs live in `actions/` (say, listen, transfer, record, hang up) and the turn-taking
decisions in `turns/` (barge-in, keypad, idle); this class routes events to them and keeps the state. Turns and
the hand-off run in their own greenlets so the event loop keeps reading PLAYBACK and fork events. A ticker
enforces every deadline (paused replies, keypad gaps, playback, heartbeats; a silent caller and the call length
in `deadlines.py`). The socket is closed only after CHANNEL_HANGUP_COMPLETE or after `exit` following a transfer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Group

from agent.call.actions.hangup import hang_up
from agent.call.actions.listen import ForkLiveness, ForkSettings, Listener, secret_from_env
from agent.call.actions.record_audio import Recorder
from agent.call.actions.say import Voice
from agent.call.actions.transfer import HandOff, HumanQueue, transfer_to_human
from agent.call.channel import ChannelInfo
from agent.call.deadlines import CallDeadlines
from agent.call.fork_events import ForkEvents
from agent.call.record import CallRecord
from agent.call.threads import call_in_thread
from agent.call.turn import Turn, TurnContext
from agent.call.turns.barge_in import Action, BargeIn, BargeInSettings
from agent.call.turns.idle import IdlePolicy
from agent.call.turns.keypad import Keypad
from agent.config import Config
from agent.dialog.policy import CallInfo, Conversation, Policy
from agent.engines.asr.hotwords import parse_variable as parse_hotwords
from agent.esl import commands as cmd
from agent.esl.codec import Event
from agent.esl.connection import Closed, Disconnect, EslConnection
from agent.esl.errors import CallGone, EslError
from agent.ops.logs import bind_call
from agent.store.calls import CallStore, now_utc

log = logging.getLogger(__name__)

LINGER_S = 30  # bounded, so a dead controller cannot keep FreeSWITCH's channel alive forever (§1.7)
TICK_S = 0.1
DTMF_EVENTS_PER_S = 20  # a keypad flood is counted, not stored row by row


def _identity(text: str) -> str:
    return text


@dataclass
class CallDeps:
    cfg: Config
    policy: Policy
    speaker: Any  # agent.engines.tts.speaker.Speaker or RemoteSpeaker
    prompts: Any  # agent.engines.tts.cache.PromptCache
    store: CallStore
    stats: Any = None  # agent.ops.stats.ControllerStats (optional)
    mask: Callable[[str], str] = field(default=_identity)  # secrets out of channel variables
    seal_recording: Callable[[str, Path], None] | None = None  # encrypts a finished recording at rest


class CallSession:
    def __init__(self, conn: EslConnection, deps: CallDeps, *, clock: Callable[[], float] = time.monotonic):
        self.conn = conn
        self.deps = deps
        self.cfg = deps.cfg.controller
        self.clock = clock
        self.group = Group()
        self.channel: ChannelInfo | None = None
        self.record: CallRecord | None = None
        self.conv: Conversation | None = None
        self.voice: Voice | None = None
        self.listener: Listener | None = None
        self.recorder: Recorder | None = None
        self.state = "connecting"  # connecting | active | escalating | ending | transferred | gone
        self.turn: Turn | None = None  # the turn being answered
        self.preview: Turn | None = None  # a reply prepared on turn_preview, held until the end of turn
        self.hangup_cause: str | None = None
        self.barge = BargeIn(BargeInSettings(max_pause_s=self.cfg.barge_in_max_pause_s))
        self.keypad = Keypad(gap_s=self.cfg.dtmf_gap_s)
        self.idle = IdlePolicy(self.cfg.no_input_timeout_s, self.cfg.no_input_prompts)
        self.liveness = ForkLiveness(self.cfg.fork_heartbeat_timeout_s)
        self.fork = ForkEvents(self)
        self.deadlines: CallDeadlines | None = None
        self._dtmf_window = (0.0, 0)  # (second, events recorded in it)

    @property
    def uuid(self) -> str:
        return self.channel.uuid if self.channel else "?"

    # lifecycle -----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self._setup():
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

    def _setup(self) -> bool:
        reply = self.conn.send("connect")
        self.channel = ChannelInfo.from_connect(reply.headers)
        bind_call(self.channel.uuid)  # every log line of this call and its greenlets carries the call id
        if self._already_finished():
            log.warning("call %s: a connection for a finished call; refused", self.uuid)
            self.conn.command("exit")
            return False
        listen = self.deps.cfg.controller.listen
        self.record = CallRecord(self.deps.store, self.channel, owner=f"{listen[0]}:{listen[1]}")
        self.conn.command("myevents")
        self.conn.command(cmd.event_subscription())
        self.conn.command(f"linger {LINGER_S}")
        channel, cfg = self.channel, self.cfg
        self.conv = self.deps.policy.open(CallInfo(
            call_id=channel.uuid, caller=channel.caller, destination=channel.destination,
            industry=channel.industry, variables=dict(channel.variables),
        ))
        self.voice = Voice(self.conn, channel.uuid, channel.read_rate, self.deps.prompts, self.record,
                           clock=self.clock)
        greeting = self.conv.greeting() or cfg.greeting
        greeting_path = self.voice.prompt_path(greeting)
        self.conn.sendmsg("answer")
        self.record.answered()
        self.state = "active"
        self.voice.play_file(greeting, greeting_path, kind="greeting", interruptible=False)
        # Stored like any agent turn: what the caller was told (AI disclosure, recording notice) is on record.
        self.record.turn(self.record.next_turn_seq(), "agent", greeting, started_at=now_utc(), source="greeting")
        if cfg.inband_dtmf:
            self.conn.sendmsg("start_dtmf")
        if cfg.recording_dir:
            self.recorder = Recorder(self.conn, channel.uuid, self.record, self.deps.cfg.path(cfg.recording_dir))
            self.recorder.start()
        self._start_fork()
        self.deadlines = CallDeadlines(
            self.conn, channel.uuid, self.voice, self.record, self.idle, cfg.no_input_action, cfg.goodbye,
            escalate=self.escalate, spawn=self.group.spawn, ending=lambda: setattr(self, "state", "ending"),
            stop_media=self._stop_ai_media, check_time=getattr(self.conv, "check_time", None))
        self.idle.activity(self.clock())
        self.group.spawn(self._ticker)
        return True

    def _already_finished(self) -> bool:
        """A later connection with a finished call's Unique-ID must never rewrite its record."""
        check = getattr(self.deps.store, "is_finished", None)
        if check is None:
            return False
        try:
            finished, _ = call_in_thread(check, self.channel.uuid, timeout=2.0)
            return bool(finished)
        except (Exception, gevent.Timeout):  # noqa: BLE001 - a store that cannot answer must not block calls
            return False

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
        if self.state in ("active", "escalating", "ending") and self.listener is not None:
            with contextlib.suppress(EslError):  # an error path with the channel still up: stop listening
                self.listener.stop()
        if self.conv is not None:
            try:
                self.conv.close()
            except Exception:  # noqa: BLE001 - closing dialog state must not mask the call's end
                log.exception("call %s: closing the conversation failed", self.uuid)
        self.conn.close()
        if self.channel is not None:
            self.deps.speaker.spool.cleanup(self.channel.uuid)
        if self.recorder is not None and self.deps.seal_recording is not None:
            gevent.get_hub().threadpool.spawn(self._seal, self.recorder.path)

    def _seal(self, path: Path) -> None:
        try:
            if path.exists():
                self.deps.seal_recording(self.uuid, path)
        except Exception:  # noqa: BLE001 - reported; the plain file stays for the operator to seal
            log.exception("call %s: sealing the recording failed", self.uuid)

    def _gone(self, why: str) -> None:
        if self.state == "gone":
            return
        previous, self.state = self.state, "gone"
        for turn in (self.turn, self.preview):
            if turn is not None:
                turn.cancel()
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
            self.voice.on_playback(ev, name == "PLAYBACK_START")
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            if self.voice is not None and self.voice.on_execute_complete(ev):
                self._playback_failed()
        elif name == "DTMF":
            self._on_dtmf(ev.get("DTMF-Digit"))
        elif name == "CUSTOM":
            self.fork.on_custom(ev.subclass, ev.json_body() or {})
        elif name == "CHANNEL_HANGUP":
            self.hangup_cause = ev.get("Hangup-Cause") or None
            self._gone("hangup")
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.hangup_cause = ev.get("Hangup-Cause") or self.hangup_cause
            self._gone("hangup complete")
            self.conn.close()  # the channel is released only once we close (§1.7)

    def _playback_failed(self) -> None:
        """FreeSWITCH could not open a file we asked it to play: the caller hears nothing of it."""
        failed = [h for h in self.voice.playout.handles.values()
                  if any(c.status == "error" for c in h.chunks)]
        if self.state == "active" and (self.voice.failures >= 2 or any(h.kind != "reply" for h in failed)):
            self.escalate("playback_failed", failure=True)

    def _on_dtmf(self, digit: str) -> None:
        now = self.clock()
        self.idle.activity(now)
        self._record_dtmf(digit, now)
        if self.state != "active":
            return
        if digit == self.cfg.dtmf_human_digit and not self.keypad.typing:
            self.escalate("dtmf", priority=3)
            return
        if not self.keypad.typing and self.recorder is not None:
            self.recorder.mask("keypad")
        entry = self.keypad.press(digit, now)
        if entry is not None:
            self._keypad_entry(entry)

    def _record_dtmf(self, digit: str, now: float) -> None:
        second, count = self._dtmf_window
        if int(now) != second:
            second, count = int(now), 0
        self._dtmf_window = (second, count + 1)
        if count < DTMF_EVENTS_PER_S:
            self.record.event("dtmf", digit=digit, entry=self.keypad.typing or digit.isdigit())

    def _keypad_entry(self, digits: str) -> None:
        if self.recorder is not None:
            self.recorder.unmask()
        self.start_turn({"text": digits, "source": "dtmf"})

    # turns --------------------------------------------------------------------------------------------

    def turn_context(self) -> TurnContext:
        return TurnContext(
            uuid=self.uuid, conv=self.conv, voice=self.voice, speaker=self.deps.speaker, record=self.record,
            rate=self.channel.read_rate, escalate=self.escalate, hang_up=self.hang_up,
            turn_timeout_s=self.cfg.turn_timeout_s, filler_after_s=self.cfg.filler_after_s,
            slow_fillers=(self.cfg.slow_filler, self.cfg.slow_filler_more), stats=self.deps.stats,
            clock=self.clock,
        )

    def start_turn(self, data: dict[str, Any], *, held: bool = False) -> Turn:
        if not held:
            self.cancel_turn()  # the caller spoke again: the newest words win
        turn = Turn(self.turn_context(), data, self.clock(), held=held)
        if held:
            self.preview = turn
        else:
            self.turn = turn
        self.group.spawn(turn.run)
        return turn

    def cancel_turn(self) -> None:
        if self.turn is not None and not self.turn.done:
            self.turn.cancel()

    def act(self, action: Action, why: str, **detail: Any) -> None:
        """Carries out a barge-in decision. A break cancels the turn first, so nothing is queued after it."""
        if action is Action.RESUME:
            self.voice.resume()
            self.record.event("barge_in_resumed", why=why, **detail)
        elif action is Action.BREAK:
            t0 = self.clock()
            only_filler = all(h.kind == "filler" for h in self.voice.playout.active())
            if not (only_filler and self.turn is not None and not self.turn.has_audio):
                self.cancel_turn()  # a filler cut by the caller leaves its tool running
            self.voice.break_all()
            self.record.event("barge_in", why=why, break_ms=round((self.clock() - t0) * 1000, 2), **detail)
            if self.deps.stats is not None:
                self.deps.stats.barge_ins += 1

    # the ticker ---------------------------------------------------------------------------------------

    def _ticker(self) -> None:
        started = self.clock()
        while self.state in ("active", "escalating", "ending"):
            gevent.sleep(TICK_S)
            now = self.clock()
            self.voice.expire()
            if self.state != "active":
                continue
            action = self.barge.tick(now)
            if action is not Action.NONE:
                self.act(action, "pause_timeout")
            entry = self.keypad.tick(now)
            if entry is not None:
                self._keypad_entry(entry)
            self.fork.tick(now, started)
            busy = (self.voice.playout.speaking or self.keypad.typing or self.fork.caller_speaking
                    or (self.turn is not None and not self.turn.done))
            self.deadlines.tick(now, busy=busy)

    # escalation and hangup ----------------------------------------------------------------------------

    def worker_lost(self, reason: str) -> None:
        self.record.event("fork_failed", reason=reason)
        log.warning("call %s: speech worker unavailable (%s); handing the caller to a human", self.uuid, reason)
        if self.state == "active":
            self.escalate("worker_unavailable", failure=True)

    def escalate(self, reason: str, summary: str = "", priority: int = 5, *, failure: bool = False) -> None:
        """Hands the caller to the human queue; runs in its own greenlet so events keep flowing."""
        if self.state != "active":
            return
        self.state = "escalating"
        if self.deps.stats is not None:
            self.deps.stats.escalations[reason] += 1
        for turn in (self.turn, self.preview):
            if turn is not None and turn.greenlet is not gevent.getcurrent():
                turn.cancel()
        self.barge.reset()
        self.group.spawn(self._escalate, reason, summary, priority, failure)

    def _stop_ai_media(self) -> None:
        """The AI's part ends here: the fork would otherwise follow the caller into the human queue (§10)."""
        if self.listener is not None:
            self.listener.stop()
        if self.recorder is not None:
            self.recorder.stop()

    def _escalate(self, reason: str, summary: str, priority: int, failure: bool) -> None:
        c = self.cfg
        handoff = HandOff(
            conn=self.conn, uuid=self.uuid, voice=self.voice, record=self.record,
            queue=HumanQueue(c.human_extension, c.human_dialplan, c.human_context, c.transfer_notice, c.apology),
            summarize=self.conv.summary if self.conv is not None else (lambda: ""),
            mask=self.deps.mask, before_transfer=self._stop_ai_media,
        )
        if transfer_to_human(handoff, reason, summary, priority, failure) == "transferred":
            self.state = "transferred"

    def hang_up(self) -> None:
        if self.state not in ("active", "escalating"):
            return
        self.state = "ending"
        self._stop_ai_media()
        hang_up(self.conn, self.uuid)

    def _start_fork(self) -> None:
        c = self.cfg
        settings = ForkSettings(url=c.fork_url, rate=c.fork_rate, bug=c.fork_bug, mix=c.fork_mix,
                                secret=secret_from_env(c.fork_secret_env))
        self.listener = Listener(self.conn, self.uuid, settings)
        hotwords = parse_hotwords(self.channel.variables.get("callagent_hotwords", ""))
        reply = self.listener.start(industry=self.channel.industry, tenant=self.channel.tenant,
                                    hotwords=list(hotwords))
        if not self.listener.started:
            self.worker_lost(f"fork start refused: {reply.strip()}")
