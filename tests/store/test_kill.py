"""What a kill -9 may lose: only the in-memory queue (at most max_queue + one batch of operations).

The child process writes through a database that accepts the TCP connection and never answers (a hung server),
so its writer is stuck and every submit piles up; then it kills itself with SIGKILL right after the last submit.
Everything beyond the bound must have reached the disk and be replayed by the next process.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap

from agent.store.calls import BATCH, CallStore

MAX_QUEUE = 20
TURNS = 400

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from agent.store.calls import CallStore, now_utc
    from agent.store.db import Database
    store = CallStore(Database(sys.argv[1]), Path(sys.argv[2]), max_queue=int(sys.argv[3]))
    store.submit("call_start", call_id="k", caller="010", destination="1588", started_at=now_utc())
    for seq in range(1, int(sys.argv[4]) + 1):
        store.submit("turn", call_id="k", seq=seq, speaker="caller", text=f"turn {seq}", started_at=now_utc())
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_kill_9_loses_at_most_the_bounded_queue(db, tmp_path):
    with socket.create_server(("127.0.0.1", 0), backlog=16) as hung:  # never accepts, never answers
        dsn = f"postgresql://x@127.0.0.1:{hung.getsockname()[1]}/x"
        proc = subprocess.run([sys.executable, "-c", CHILD, dsn, str(tmp_path / "spool"), str(MAX_QUEUE),
                               str(TURNS)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    store = CallStore(db, tmp_path / "spool")  # the next process replays what reached the disk
    assert store.flush(30)
    with db.connection() as conn:
        start = conn.execute("SELECT count(*) AS n FROM calls").fetchone()["n"]
        turns = conn.execute("SELECT count(*) AS n FROM turns").fetchone()["n"]
    lost = (1 + TURNS) - (start + turns)
    assert start == 1  # when the call's start was in flight, its turns are kept under a placeholder call
    assert 0 <= lost <= MAX_QUEUE + BATCH, f"lost {lost} operations"
    assert store.stats["overflowed"] == 0  # this process only replayed
    store.close()
