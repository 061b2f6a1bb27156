"""`callagent bench load` keeps its calls where `callagent dashboard` reads them, each analysed and costed at its end.

A small real run (three simulated calls through the controller and worker processes, fake ASR): the database it
names holds the calls with their analytics before any dashboard page is asked for (so they were computed when
each call ended, not by the dashboard's catch-up), the cost uses the configured price, and the dashboard's pages
over that database show the database's numbers.
"""

from __future__ import annotations

import contextlib
import shlex
import urllib.request

import psycopg
import pytest

from agent.config import ENV_DB_DSN, parse_config
from agent.ops.bench import load
from agent.ops.dashboard.server import Dashboard, start_in_thread
from agent.store.db import Database
from tests.ops.test_dashboard import Page

CALLS = 3
TELEPHONY_KRW_PER_MIN = 600.0  # not the default (20): proves the run used the configured prices


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read().decode()


@pytest.fixture(scope="module")
def run(pg_server_dsn, tmp_path_factory):
    cfg = parse_config({"store": {"dsn": pg_server_dsn},
                        "analytics": {"prices": {"telephony_per_minute": TELEPHONY_KRW_PER_MIN}}})
    result = load.run(cfg, tmp_path_factory.mktemp("load"), calls=CALLS)
    kept = result["database"]
    dsn = psycopg.conninfo.make_conninfo(pg_server_dsn, dbname=kept["name"])
    yield cfg, result, Database(dsn)
    with contextlib.suppress(psycopg.Error), psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {kept['name']} WITH (FORCE)")


def test_calls_are_kept_and_analysed_when_they_end(run):
    _, result, db = run
    assert result["levels"][0]["answered"] == CALLS
    with db.connection() as conn:  # before any dashboard page: the dashboard would analyse on demand
        calls = conn.execute("SELECT call_id, ended_at FROM calls").fetchall()
        rows = conn.execute("SELECT call_id, duration_s, cost_krw, cost FROM call_analytics").fetchall()
    assert len(calls) == CALLS and all(c["ended_at"] is not None for c in calls)
    assert {r["call_id"] for r in rows} == {c["call_id"] for c in calls}
    for r in rows:
        telephony = r["duration_s"] / 60 * TELEPHONY_KRW_PER_MIN
        assert r["cost"]["telephony_krw"] == pytest.approx(telephony, rel=0.01)
        assert r["cost_krw"] >= telephony * 0.99
    kept = result["database"]
    assert (kept["calls"], kept["analysed"]) == (CALLS, CALLS)
    assert kept["cost_krw"] == pytest.approx(sum(r["cost_krw"] for r in rows), abs=0.01)


def test_the_printed_command_opens_that_database(run):
    _, result, db = run
    env, _, rest = result["database"]["dashboard"].partition("=")
    assert env == ENV_DB_DSN and rest.endswith(" callagent dashboard")
    dsn = shlex.split(rest)[0]
    assert psycopg.conninfo.conninfo_to_dict(dsn)["dbname"] == result["database"]["name"]
    assert "password" not in psycopg.conninfo.conninfo_to_dict(dsn)
    with psycopg.connect(dsn) as conn:  # the printed DSN reaches the same rows
        assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == CALLS


def test_dashboard_pages_show_the_calls_with_analytics_and_cost(run):
    cfg, _, db = run
    with db.connection() as conn:
        rows = {r["call_id"]: r for r in conn.execute(
            "SELECT call_id, quality_score, cost_krw, resolution FROM call_analytics").fetchall()}
    httpd = start_in_thread(Dashboard(cfg, db, status=lambda: []))
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        listed = Page(_get(base + "/calls")).rows
        assert set(listed) == set(rows)
        for call_id, r in rows.items():
            assert listed[call_id]["cost"] == f"₩{r['cost_krw']:,.1f}"
            assert listed[call_id]["quality"] == f"{r['quality_score']:,.1f}"
            detail = Page(_get(f"{base}/calls/{call_id}")).ids
            assert detail["cost"] == f"₩{r['cost_krw']:,.1f}"
            assert detail["quality"] == f"{r['quality_score']:,.1f}"
            assert detail["resolution"].startswith(r["resolution"])
        overview = Page(_get(base + "/")).rows
        days = [d for d in overview.values() if "calls" in d]
        assert sum(int(d["calls"]) for d in days) == CALLS
        assert sum(float(d["cost"].lstrip("₩").replace(",", "")) for d in days) == pytest.approx(
            sum(r["cost_krw"] for r in rows.values()), abs=0.05 * len(days))
    finally:
        httpd.shutdown()
