"""The dashboard over 10,000 stored calls: its numbers equal the database's, in a real headless Chromium.

The expected figures are computed here from plain queries (no dashboard code), so a wrong formula on the page
(a rate over the wrong calls, a percentile off by one rank, a day in UTC instead of Seoul) fails a test.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from agent.analytics.settings import AnalyticsSettings
from agent.analytics.store import backfill
from agent.config import ConfigError, parse_config
from agent.ops.dashboard.server import Dashboard, access_token, start_in_thread
from agent.store.db import Database
from tests.analytics.seed import seed_many

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "var" / "dashboard-test"
SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime.now(UTC).replace(microsecond=0)
CALLS = 10_000


class Page(HTMLParser):
    """Text of every element with an id; cells (by class) of every row with data-day / data-reason / data-call."""

    def __init__(self, html: str):
        super().__init__()
        self.ids: dict[str, str] = {}
        self.rows: dict[str, dict[str, str]] = {}
        self._open: list[tuple[str, str | None, list[str]]] = []  # (tag, id, text parts)
        self._row: str | None = None
        self._cell: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            key = a.get("data-day") or a.get("data-reason") or a.get("data-call")
            self._row = key
            if key:
                self.rows[key] = {}
        if tag == "td" and self._row:
            self._cell = (a.get("class") or "").split(" ")[0] or f"td{len(self.rows[self._row])}"
            self.rows[self._row][self._cell] = ""
        if tag not in ("br", "img", "meta", "input", "circle", "line", "rect", "polyline"):
            self._open.append((tag, a.get("id"), []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            t, ident, parts = self._open.pop()
            if ident:
                self.ids[ident] = " ".join("".join(parts).split())
            if t == tag:
                break
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open:
            parts.append(data)
        if self._row and self._cell:
            self.rows[self._row][self._cell] += data.strip()


@pytest.fixture(scope="module")
def stored(pg_server_dsn) -> Database:
    """10,000 finished calls over 10 days before now (3 still open); the last 2 days analysed."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db = Database(psycopg.conninfo.make_conninfo(pg_server_dsn, dbname=name))
    db.migrate()
    seed_many(db, CALLS, end=NOW)
    list(backfill(db, AnalyticsSettings(), "espeak", since=NOW - timedelta(days=2)))
    return db


def expected_days(db: Database) -> dict[str, dict[str, str]]:
    """Per Seoul day: the figures the page must show, formatted as the page formats them."""
    with db.connection() as conn:
        calls = conn.execute("SELECT call_id, started_at, end_reason FROM calls WHERE ended_at IS NOT NULL").fetchall()
        analysed = {r["call_id"]: r for r in conn.execute(
            "SELECT call_id, resolution, gaps_ms, cost_krw FROM call_analytics").fetchall()}
    days: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for c in calls:
        a = analysed.get(c["call_id"])
        outcome = a["resolution"] if a else {"transferred": "transferred", "failed": "failed"}.get(
            c["end_reason"], "resolved")
        d = days[c["started_at"].astimezone(SEOUL).date().isoformat()]
        d["outcomes"].append(outcome)
        if a:
            d["gaps"] += a["gaps_ms"]
            d["cost"].append(a["cost_krw"])

    def rank(values: list[float], p: float) -> str:
        return f"{sorted(values)[math.ceil(p / 100 * len(values)) - 1]:.0f} ms" if values else "–"

    out = {}
    for day, d in days.items():
        n = len(d["outcomes"])
        completed = sum(1 for o in d["outcomes"] if o in ("resolved", "callback"))
        transferred = d["outcomes"].count("transferred")
        out[day] = {"calls": str(n), "completed": str(completed), "transferred": str(transferred),
                    "abandoned": str(d["outcomes"].count("abandoned")), "failed": str(d["outcomes"].count("failed")),
                    "completion": f"{100 * completed / n:.1f}%", "escalation": f"{100 * transferred / n:.1f}%",
                    "v2v-p50": rank(d["gaps"], 50), "v2v-p95": rank(d["gaps"], 95),
                    "cost": f"₩{sum(d['cost']):,.1f}" if d["cost"] else "–"}
    return out


@pytest.fixture(scope="module")
def server(stored):
    app = Dashboard(parse_config({}), stored, status=lambda: [], now=lambda: NOW)
    httpd = start_in_thread(app)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def get(url: str, headers: dict[str, str] | None = None) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as resp:
        return resp.read().decode()


def _won(text: str | None) -> float | None:
    return None if text in (None, "–") else float(text.lstrip("₩").replace(",", ""))


def check_overview(page: Page, db: Database) -> None:
    want = expected_days(db)
    today = NOW.astimezone(SEOUL).date()
    shown = {day: want[day] for day in want if (today - datetime.fromisoformat(day).date()).days < 14}
    assert set(page.rows) >= set(shown) and len(shown) >= 10
    for day, figures in shown.items():
        row = page.rows[day]
        assert {k: row.get(k) for k in figures if k != "cost"} == {k: v for k, v in figures.items() if k != "cost"}, day
        # Won to one decimal: PostgreSQL sums the day in its own order, this test in Python's; the two may round
        # a last digit apart (5,377.9 / 5,378.0), never more.
        got, want = _won(row.get("cost")), _won(figures["cost"])
        assert (got is None and want is None) or (got is not None and want is not None and abs(got - want) <= 0.11), day
    assert page.ids["total-calls"] == str(sum(int(f["calls"]) for f in shown.values())) == str(CALLS)
    assert page.ids["live-count"] == "3"
    with db.connection() as conn:
        reasons = conn.execute("SELECT escalation_reason AS r, count(*) AS n FROM calls"
                               " WHERE end_reason = 'transferred' GROUP BY 1").fetchall()
    assert {r["r"]: str(r["n"]) for r in reasons} == {k: v["n"] for k, v in page.rows.items() if "n" in v}


def test_overview_numbers_equal_the_database(server, stored):
    check_overview(Page(get(server + "/")), stored)


def test_calls_are_paginated_newest_first_and_a_call_shows_its_analytics(server, stored):
    page = Page(get(server + "/calls?page=3"))
    with stored.connection() as conn:
        ids = [r["call_id"] for r in conn.execute(
            "SELECT call_id FROM calls ORDER BY started_at DESC, call_id LIMIT 50 OFFSET 100").fetchall()]
        newest = conn.execute("SELECT a.*, (SELECT count(*) FROM turns t WHERE t.call_id = a.call_id) AS turns"
                              " FROM call_analytics a ORDER BY started_at DESC LIMIT 1").fetchone()
    assert list(page.rows) == ids
    detail = Page(get(server + "/calls/" + newest["call_id"]))
    assert detail.ids["quality"] == f"{newest['quality_score']:,.1f}"
    assert detail.ids["cost"] == f"₩{newest['cost_krw']:,.1f}"
    assert detail.ids["resolution"].startswith(newest["resolution"])
    assert detail.ids["turns"].count("policy") == newest["replies"]


def test_a_finished_call_without_analytics_is_analysed_when_opened(server, stored):
    with stored.connection() as conn:
        old = conn.execute("SELECT c.call_id FROM calls c LEFT JOIN call_analytics a USING (call_id)"
                           " WHERE a.call_id IS NULL AND c.ended_at IS NOT NULL LIMIT 1").fetchone()["call_id"]
    Page(get(server + "/calls/" + old))
    with stored.connection() as conn:
        assert conn.execute("SELECT 1 FROM call_analytics WHERE call_id = %s", (old,)).fetchone() is not None


def test_live_calls_come_from_the_controllers_status(stored):
    status = [{"url": "http://a:9464", "host": "fs1", "calls": [
        {"call_id": "abc", "state": "active", "age_s": 75.0, "last_activity_s": 1.5}]},
              {"url": "http://b:9464", "error": "ConnectError: refused"}]
    httpd = start_in_thread(Dashboard(parse_config({}), stored, status=lambda: status, now=lambda: NOW))
    try:
        page = Page(get(f"http://127.0.0.1:{httpd.server_address[1]}/"))
    finally:
        httpd.shutdown()
    assert page.ids["live-count"] == "1" and "controller /status" in page.ids["live"]
    assert "1:15" in page.ids["live"] and "unreachable: http://b:9464" in page.ids["live"]


def test_a_token_guards_anything_but_loopback(stored, monkeypatch):
    cfg = parse_config({})
    monkeypatch.delenv("CALLAGENT_DASHBOARD_TOKEN", raising=False)
    assert access_token(cfg, "127.0.0.1") is None
    with pytest.raises(ConfigError):
        access_token(cfg, "0.0.0.0")
    monkeypatch.setenv("CALLAGENT_DASHBOARD_TOKEN", "s3cret")
    httpd = start_in_thread(Dashboard(cfg, stored, token=access_token(cfg, "0.0.0.0"), status=lambda: []))
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            get(base + "/calls")
        assert denied.value.code == 401
        assert "Calls" in get(base + "/calls", {"Authorization": "Bearer s3cret"})
        assert "Calls" in get(base + "/calls", {"Cookie": "callagent_dashboard=s3cret"})
        with pytest.raises(urllib.error.HTTPError):
            get(base + "/calls", {"Cookie": "callagent_dashboard=guess"})
    finally:
        httpd.shutdown()


# --- in a real browser ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (Debian `chromium`; `make system-packages` installs it when apt works)")
    return exe


def browser(exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--disable-dev-shm-usage", *args], capture_output=True, text=True, timeout=120)


def test_pages_in_headless_chromium(server, stored, chromium):
    out = browser(chromium, "--dump-dom", server + "/")
    assert out.returncode == 0, out.stderr[-2000:]
    check_overview(Page(out.stdout), stored)  # the DOM Chromium built, not the bytes we sent
    calls = browser(chromium, "--dump-dom", server + "/calls?page=2")
    assert len(Page(calls.stdout).rows) == 50
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in (("overview", "/"), ("calls", "/calls"), ("call", "/calls/seed-00001")):
        shot = SHOTS / f"{name}.png"
        shot.unlink(missing_ok=True)
        done = browser(chromium, "--window-size=1400,2000", f"--screenshot={shot}", server + path)
        assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]  # a page, not blank
