"""The hang-up verb: the agent ends the call (`uuid_kill`, freeswitch.md §4); the goodbye has played by then."""

from __future__ import annotations

from agent.esl import commands as cmd
from agent.esl.connection import EslConnection


def hang_up(conn: EslConnection, uuid: str) -> None:
    conn.api(cmd.uuid_kill(uuid), check=False)
