"""The scripted caller: runs a CallScript's steps against one simulated channel.

Call-time waits (settle, after_ms, sleep, trailing silence) are divided by the simulator's speed; step
timeouts are wall-clock safety nets and are not. A failed step is recorded in `CallLog.errors` and ends
the script; a step cut short because the agent is done with the call is recorded in `CallLog.notes`.
After a transfer the caller is still on the line (in the human queue): speech and DTMF go on and reach
whatever media bug is still attached; steps that wait for the agent end the script, and `sleep` ends
early once the agent is done with the call.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np

from agent.sim.audio import AudioError, espeak_wav, load_mono
from agent.sim.channel import Channel
from agent.sim.dtmf import tones as inband_tones
from agent.sim.log import Utterance
from agent.sim.scenario import (
    BargeIn,
    CallScript,
    Dtmf,
    ExpectTransfer,
    Hangup,
    SayAudio,
    SayText,
    Sleep,
    Step,
    WaitIdle,
    WaitPlayback,
)

TRAILING_SILENCE_S = 1.2       # so the worker's endpointer closes the turn
DTMF_GAP_S = 0.3
SPEECH_SLACK_S = 10.0          # wall-clock allowance beyond an utterance's own length


class StepFailed(Exception):
    """A step could not complete (timeout, bad audio, missing transfer)."""


class CallGone(Exception):
    """The agent is done with this caller (hung up, transferred, or let the call fall through)."""


_AGENT_STEPS = (WaitIdle, WaitPlayback, BargeIn)   # steps that need the agent on the call


class Caller:
    _names = itertools.count(1)

    def __init__(self, channel: Channel, script: CallScript, temp_dir: Path):
        self.ch = channel
        self.script = script
        self.temp_dir = temp_dir
        self.speed = channel.speed

    async def run(self) -> None:
        for index, step in enumerate(self.script.steps):
            label = f"step {index} ({type(step).__name__})"
            try:
                if not self.ch.up or (self.ch.over.is_set() and isinstance(step, _AGENT_STEPS)):
                    raise CallGone
                await self._step(step)
            except CallGone:
                self.ch.note(f"{label} not completed: the call left the agent ({self._why()})")
                return
            except (StepFailed, AudioError) as exc:
                self.ch.log.errors.append(f"{label}: {exc}")
                return

    def _why(self) -> str:
        if not self.ch.up:
            return f"hangup {self.ch.hangup_cause}"
        return "fell through" if self.ch.fell_through else "transferred"

    async def _step(self, step: Step) -> None:
        if isinstance(step, WaitIdle):
            await self._wait_idle(step)
        elif isinstance(step, WaitPlayback):
            await self._wait_playback(step.timeout_s)
        elif isinstance(step, SayAudio):
            audio, rate = load_mono(step.path)
            await self._speak(audio, rate, text=step.inject_text, path=step.path, inject=step.inject_text)
        elif isinstance(step, SayText):
            await self._say_text(step.text, barge_in=False)
        elif isinstance(step, BargeIn):
            await self._wait_playback(step.timeout_s)
            await self._call_sleep(step.after_ms / 1000.0)
            self._require_agent()
            if step.text is not None:
                await self._say_text(step.text, barge_in=True)
            elif step.path is not None:
                audio, rate = load_mono(step.path)
                await self._speak(audio, rate, text=None, path=step.path, inject=None, barge_in=True)
        elif isinstance(step, Dtmf) and step.inband:
            self._require_call()
            rate = self.ch.codec_rate
            await self._speak(inband_tones(step.digits, rate), rate, text=None, path=None, inject=None)
        elif isinstance(step, Dtmf):
            for i, digit in enumerate(step.digits):
                if i:
                    await self._call_sleep(DTMF_GAP_S)
                self._require_call()
                self.ch.dtmf(digit)
        elif isinstance(step, Sleep):
            # A pause ends early when the agent is done with the call (then `queue_s` applies).
            await self.ch.wait_until(self.ch.over.is_set, step.seconds / self.speed)
        elif isinstance(step, Hangup):
            self.ch.hangup("NORMAL_CLEARING", by="caller")
        elif isinstance(step, ExpectTransfer):
            await self._expect_transfer(step.timeout_s)

    def _require_call(self) -> None:
        if not self.ch.up:
            raise CallGone

    def _require_agent(self) -> None:
        if self.ch.over.is_set():
            raise CallGone

    async def _call_sleep(self, call_seconds: float) -> None:
        if call_seconds > 0:
            await self.ch.wait_until(lambda: not self.ch.up, call_seconds / self.speed)
        self._require_call()

    async def _wait_idle(self, step: WaitIdle) -> None:
        deadline = time.monotonic() + step.timeout_s
        settle = step.settle_ms / 1000.0 / self.speed
        ex = self.ch.executor
        # A caller waits for the call to be answered before listening for a pause: "idle" before the agent
        # has answered is only the gap before its first command.
        if not await self.ch.wait_until(lambda: self.ch.answered or self.ch.over.is_set(), step.timeout_s):
            raise StepFailed(f"the agent did not answer within {step.timeout_s}s")
        self._require_agent()
        while True:
            left = deadline - time.monotonic()
            if not await self.ch.wait_until(lambda: ex.idle or self.ch.over.is_set(), max(0.0, left)):
                raise StepFailed(f"agent still playing after {step.timeout_s}s")
            self._require_agent()
            # Idle must hold for the whole settle time; any new playback or command restarts it.
            if not await self.ch.wait_until(lambda: not ex.idle or self.ch.over.is_set(), settle):
                return
            self._require_agent()

    async def _wait_playback(self, timeout_s: float) -> None:
        before = self.ch.playback_starts
        ok = await self.ch.wait_until(
            lambda: self.ch.executor.playing > 0 or self.ch.playback_starts > before or self.ch.over.is_set(),
            timeout_s)
        self._require_agent()
        if not ok:
            raise StepFailed(f"no playback within {timeout_s}s")

    async def _expect_transfer(self, timeout_s: float) -> None:
        log = self.ch.log
        await self.ch.wait_until(lambda: log.transfer is not None or not self.ch.up, timeout_s)
        if log.transfer is None or log.transfer.via == "dialplan":
            state = "fell through to the dialplan" if log.transfer else (
                f"hung up ({self.ch.hangup_cause})" if not self.ch.up else "still with the agent")
            raise StepFailed(f"expected a transfer within {timeout_s}s; the call {state}")

    async def _say_text(self, text: str, *, barge_in: bool) -> None:
        wav = self.temp_dir / f"say_{self.ch.uuid[:8]}_{next(self._names)}.wav"
        await espeak_wav(text, wav)
        audio, rate = load_mono(wav)
        await self._speak(audio, rate, text=text, path=None, inject=text, barge_in=barge_in)

    async def _speak(self, audio: np.ndarray, rate: int, *, text: str | None, path: Path | None,
                     inject: str | None, barge_in: bool = False) -> None:
        """Queue the utterance on the channel's read stream, then ~1.2 s of silence."""
        self._require_call()
        utt = Utterance(text=text, path=str(path) if path else None, injected=inject is not None,
                        duration_s=len(audio) / rate, t_queued=time.monotonic(), barge_in=barge_in)
        self.ch.log.utterances.append(utt)
        if inject is not None:
            frame = json.dumps({"type": "callagent.inject", "text": inject}, ensure_ascii=False,
                               separators=(",", ":"))
            sent = [bug.send_text(frame, mergeable=False) for bug in self.ch.bugs.values()]
            if not any(sent):
                self.ch.note(f"inject of {inject!r} dropped: no connected fork")
        done = self.ch.mouth.say(audio, rate, utt)
        limit = utt.duration_s / self.speed + SPEECH_SLACK_S
        await self.ch.wait_until(lambda: done.is_set() or not self.ch.up, limit)
        self._require_call()
        if not done.is_set():
            raise StepFailed(f"utterance did not finish streaming within {limit:.1f}s")
        await self._call_sleep(TRAILING_SILENCE_S)
