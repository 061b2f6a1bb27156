"""FreeSWITCH simulator: drives the real controller and worker over real sockets (freeswitch.md §8, §9).

Shares no protocol code with the agent: its own ESL codec, URL-encoder and mod_audio_fork client.
"""

from agent.sim.freeswitch import FreeSwitchSim
from agent.sim.log import CallLog, CommandRecord, EventRecord, ForkLog, Heard, QueueStay, Transfer, Utterance
from agent.sim.playout import Segment
from agent.sim.recorder import RecordLog
from agent.sim.scenario import (
                                BargeIn,
                                CallScript,
                                Dtmf,
                                Echo,
                                ExpectTransfer,
                                Hangup,
                                SayAudio,
                                SayText,
                                ScenarioError,
                                Sleep,
                                WaitIdle,
                                WaitPlayback,
                                load_script,
)

__all__ = [
    "BargeIn", "CallLog", "CallScript", "CommandRecord", "Dtmf", "Echo", "EventRecord", "ExpectTransfer",
    "ForkLog", "FreeSwitchSim", "Hangup", "Heard", "QueueStay", "RecordLog", "SayAudio", "SayText",
    "ScenarioError", "Segment", "Sleep", "Transfer", "Utterance", "WaitIdle", "WaitPlayback", "load_script",
]
