"""FreeSWITCH simulator: drives the real controller and worker over real sockets (freeswitch.md §8, §9).

Shares no protocol code with the agent: its own ESL codec, URL-encoder and mod_audio_fork client.
"""

from agent.sim.freeswitch import FreeSwitchSim
from agent.sim.log import CallLog, CommandRecord, EventRecord, ForkLog, Heard, Transfer, Utterance
from agent.sim.scenario import (
                                BargeIn,
                                CallScript,
                                Dtmf,
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
    "BargeIn", "CallLog", "CallScript", "CommandRecord", "Dtmf", "EventRecord", "ExpectTransfer", "ForkLog",
    "FreeSwitchSim", "Hangup", "Heard", "SayAudio", "SayText", "ScenarioError", "Sleep", "Transfer",
    "Utterance", "WaitIdle", "WaitPlayback", "load_script",
]
