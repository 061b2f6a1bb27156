"""FreeSwitchSim: a faithful fake FreeSWITCH 1.10 + drachtio mod_audio_fork for tests, demo and benchmarks.

Each scripted call runs the project's own dialplan XML (`dialplan/`): the DID's extension dials the agent
hosts like `socket h1|h2 async full` (freeswitch.md §1.3) and follows the §8 checklist; events go through
one process-wide bus, as in FreeSWITCH, so a socket subscribed without `myevents` sees every channel's
events.
"""

from __future__ import annotations

import asyncio
import grp
import itertools
import shutil
import tempfile
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from agent.sim.caller import Caller
from agent.sim.channel import Channel
from agent.sim.dialplan import DEFAULT_DIALPLAN, DEFAULT_VARS, Dialplan
from agent.sim.events import EventFactory, SimEvent
from agent.sim.listener import OutboundListener
from agent.sim.log import CallLog
from agent.sim.scenario import CallScript


class FreeSwitchSim:
    def __init__(self, agent_addr: tuple[str, int] | Sequence[tuple[str, int]], *, speed: float = 1.0,
                 temp_dir: Path | None = None, full: bool = True, hangup_event_on_no_linger: bool = True,
                 merge_frames: bool = False, narrowband: bool = True, final_timeout_s: float = 10.0,
                 dialplan_dir: Path = DEFAULT_DIALPLAN, vars_xml: Path = DEFAULT_VARS,
                 fs_uid: int | None = None, fs_gids: Iterable[int] | None = None, late_events: bool = False):
        """
        agent_addr: the agent's outbound-socket listener (host, port), or a list of them: they replace
            the host list of the dialplan's `socket` action, tried in order (refused → next host).
        speed: call-time divisor; audio, playback and scripted pauses run `speed` times faster.
        temp_dir: playAudio files and synthesized caller audio (a fresh temp folder if None).
        full: the dialplan's `socket … full` flag; without it api/event/linger get `-ERR command not found`.
        hangup_event_on_no_linger: deliver CHANNEL_HANGUP before the goodbye when not lingering (§1.7 says
            it may be missing; False reproduces that).
        merge_frames: now and then send two 20 ms packets in one WebSocket frame (§9).
        narrowband: pass caller audio through the 8 kHz PCMU channel, as a phone call does.
        final_timeout_s: how long to wait for the agent to close its socket once the call is over.
        dialplan_dir / vars_xml: the XML the calls follow (the project's own by default).
        late_events: deliver the events a channel fired before `socket` (CHANNEL_EXECUTE/…_COMPLETE of the
            DID extension's apps, CHANNEL_PROGRESS_MEDIA) once the agent subscribes, as seen on the first
            call after FreeSWITCH starts (§9).
        fs_uid / fs_gids: who FreeSWITCH runs as when it opens a file to play (user `freeswitch`: by
            default no uid of ours and the gid of a `freeswitch` group if one exists).
        """
        addrs = [agent_addr] if isinstance(agent_addr, tuple) and isinstance(agent_addr[1], int) \
            else list(agent_addr)  # type: ignore[arg-type]
        if not addrs:
            raise ValueError("agent_addr: at least one (host, port)")
        for _host, port in addrs:
            if not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError(f"agent_addr port must be 1-65535, got {port!r}")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.agent_addrs: list[tuple[str, int]] = [(str(h), p) for h, p in addrs]
        self.agent_addr = self.agent_addrs[0]
        self.dialplan = Dialplan.load(dialplan_dir, vars_xml, env={})
        self.fs_uid = fs_uid
        self.late_events = late_events
        self.fs_gids = frozenset(default_fs_gids() if fs_gids is None else fs_gids)
        self.speed = float(speed)
        self._own_temp = temp_dir is None
        self.temp_dir = (Path(temp_dir) if temp_dir is not None
                         else Path(tempfile.mkdtemp(prefix="callagent-sim-")))
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.full = full
        self.hangup_event_on_no_linger = hangup_event_on_no_linger
        self.merge_frames = merge_frames
        self.narrowband = narrowband
        self.final_timeout_s = final_timeout_s
        self.events = EventFactory(core_uuid=str(uuidlib.uuid4()))
        self.channels: dict[str, Channel] = {}
        self.listeners: list[OutboundListener] = []
        self._session_ids = itertools.count(1)
        self._play_count = itertools.count(0)     # playCount is global in lws_glue.cpp

    def fire(self, event: SimEvent) -> None:
        """switch_event_fire: every listener decides for itself (§1.5)."""
        for listener in list(self.listeners):
            listener.offer(event)

    def locate(self, uuid: str) -> Channel | None:
        """switch_core_session_locate: found until the channel is destroyed (after its socket closes)."""
        return self.channels.get(uuid)

    def next_session_id(self) -> int:
        return next(self._session_ids)

    def play_file_path(self, uuid: str, ext: str) -> Path:
        """`<temp_dir>/<uuid>_<n>.tmp<ext>`, as mod_audio_fork names playAudio files."""
        return self.temp_dir / f"{uuid}_{next(self._play_count)}.tmp{ext}"

    async def run_call(self, script: CallScript) -> CallLog:
        """One call: dial the agent, run the caller's script, hang up, return the log.

        A caller the agent transferred (or who fell through to the human queue) stays there for
        `script.queue_s` more seconds of call time after the script's last step, then hangs up: the
        channel and its media bugs live on meanwhile, as on FreeSWITCH."""
        channel = Channel(self, script)
        run = asyncio.get_running_loop().create_task(channel.run(), name=f"call-{channel.uuid[:8]}")
        try:
            await channel.started.wait()
            if channel.up:
                await Caller(channel, script, self.temp_dir).run()
            if channel.up and channel.over.is_set():
                await channel.wait_until(lambda: not channel.up, script.queue_s / self.speed)
        finally:
            if channel.up:
                channel.hangup("NORMAL_CLEARING", by="caller")
            channel.finish_script()
            await run
        return channel.log

    def run_calls(self, scripts: Iterable[CallScript], stagger_s: float = 0.0) -> list[CallLog]:
        """Runs calls concurrently on a fresh event loop; `stagger_s` spaces their starts."""
        scripts = list(scripts)

        async def one(i: int, script: CallScript) -> CallLog:
            await asyncio.sleep(i * stagger_s)
            return await self.run_call(script)

        async def main() -> list[CallLog]:
            return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(scripts))))

        return asyncio.run(main())

    def cleanup(self) -> None:
        """Removes the temp folder if the simulator created it."""
        if self._own_temp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def default_fs_gids() -> list[int]:
    """The gid of the `freeswitch` group, when this machine has one."""
    try:
        return [grp.getgrnam("freeswitch").gr_gid]
    except KeyError:
        return []
