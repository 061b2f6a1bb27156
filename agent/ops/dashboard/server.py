"""`callagent dashboard`: the operator's web UI, server-rendered (Jinja2 templates, inline SVG charts).

Pages: `/` live calls and daily figures, `/calls` recent calls (paginated), `/calls/<id>` one call's transcript,
latency parts, analytics, cost and recording. Loopback by default; on any other address a token is required
(the variable named by `dashboard.token_env`), sent as `?token=` once (then a cookie) or `Authorization: Bearer`.
Each request opens one short database connection; every query is bounded (agent/analytics/queries.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2

from agent.analytics import queries
from agent.analytics.settings import parse_analytics, parse_dashboard
from agent.analytics.store import analyze_in
from agent.config import Config, ConfigError
from agent.ops.dashboard import charts
from agent.store.db import Database

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
COOKIE = "callagent_dashboard"
_CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DAYS_DEFAULT, DAYS_MAX = 14, 90
CATCH_UP_EVERY_S = 60.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Dashboard:
    """Renders the pages; the HTTP handler only routes and checks access."""

    def __init__(self, cfg: Config, db: Database, *, token: str | None = None,
                 status: Callable[[], list[dict[str, Any]]] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.cfg = cfg
        self.db = db
        self.analytics = parse_analytics(cfg.analytics)
        self.settings = parse_dashboard(cfg.dashboard)
        self.tz = ZoneInfo(self.analytics.timezone)
        self.token = token
        self.now = now
        self._status = status or self._controller_status
        rec = getattr(cfg.controller, "recording_dir", "")
        self.recording_dir = cfg.path(rec) if rec else None
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                      undefined=jinja2.StrictUndefined)
        self.env.filters.update(pct=_pct, ms=_ms, krw=_krw, num=_num, dur=_dur, local=self._local)

    def _local(self, value: datetime | None, fmt: str = "%m-%d %H:%M:%S") -> str:
        return value.astimezone(self.tz).strftime(fmt) if value else "–"

    def _controller_status(self) -> list[dict[str, Any]]:
        urls = getattr(self.cfg.controller, "status_urls", ())
        if not urls:
            return []
        from agent.ops.status import fetch_status

        return fetch_status(urls)

    def live(self, conn: Any) -> tuple[list[dict[str, Any]], str, list[str]]:
        """Live calls from the controllers' `/status`; from open call records when none answers."""
        hosts = self._status()
        answered = [h for h in hosts if "error" not in h]
        errors = [f"{h.get('url')}: {h['error']}" for h in hosts if "error" in h]
        if answered:
            calls = [{**c, "host": h.get("host", h.get("url"))} for h in answered for c in h.get("calls", [])]
            return calls, "controller /status", errors
        return queries.open_calls(conn, self.now()), "database (calls without an end)", errors

    def overview(self, days: int) -> str:
        today = self.now().astimezone(self.tz).date()
        with self.db.connection() as conn:
            live, live_source, live_errors = self.live(conn)
            rows = queries.daily(conn, self.analytics.timezone, today, days)
            reasons = queries.escalation_reasons(conn, self.analytics.timezone, today, days)
        chrono = list(reversed(rows))
        labels = [r["day"].strftime("%m-%d") for r in chrono]
        ms_to_s = [(r["v2v_p50"] / 1000 if r["v2v_p50"] is not None else None) for r in chrono]
        p95_s = [(r["v2v_p95"] / 1000 if r["v2v_p95"] is not None else None) for r in chrono]
        figures = {
            "calls": charts.bars(labels, [r["calls"] for r in chrono], "Calls per day"),
            "rates": charts.lines(labels, {"completion": [r["completion_rate"] for r in chrono],
                                           "escalation": [r["escalation_rate"] for r in chrono]},
                                  "Completion and escalation rate", top=1.0, threshold=0.3),
            "v2v": charts.lines(labels, {"p50": ms_to_s, "p95": p95_s}, "Caller speech end to reply (s)",
                                threshold=2.0, unit=" s"),
            "cost": charts.bars(labels, [r["cost_krw"] for r in chrono], "Cost per day (₩)"),
        }
        total = {k: sum(r[k] or 0 for r in rows) for k in ("calls", "completed", "transferred", "abandoned",
                                                             "failed", "cost_krw", "analysed")}
        return self._render("overview.html", live=live, live_source=live_source, live_errors=live_errors,
                            rows=rows, reasons=reasons, figures=figures, total=total, days=days,
                            today=today, tz=self.analytics.timezone)

    def calls(self, page: int) -> str:
        size = self.settings.page_size
        with self.db.connection() as conn:
            rows, total = queries.recent_calls(conn, page, size)
        pages = max(1, -(-total // size))
        return self._render("calls.html", rows=rows, page=min(page, pages), pages=pages, total=total)

    def call(self, call_id: str) -> str | None:
        with self.db.connection() as conn:
            call = queries.call_detail(conn, call_id)
            if call is None:
                return None
            if call["ended_at"] is not None and call["analytics"] is None:
                # Ended while no analysis ran (database down at the end, or an older version): do it now.
                analyze_in(conn, call_id, self.analytics, self.cfg.tts.engine)
                call["analytics"] = queries.call_detail(conn, call_id)["analytics"]
        recording = None
        if any(e["kind"] == "recording_started" for e in call["events"]):
            recording = "/recording/" + quote(call_id)
        return self._render("call.html", call=call, a=call["analytics"], recording=recording)

    def recording(self, call_id: str) -> Path | None:
        if self.recording_dir is None:
            return None
        path = self.recording_dir / f"{call_id}.wav"
        return path if path.is_file() else None

    def catch_up(self) -> int:
        """Analyses ended calls that have no analytics yet (the demo's and benchmark's controllers, calls that
        ended while the database was down); returns how many."""
        from agent.analytics.store import backfill

        return sum(1 for _ in backfill(self.db, self.analytics, self.cfg.tts.engine))

    def _render(self, name: str, **ctx: Any) -> str:
        return self.env.get_template(name).render(generated=self.now().astimezone(self.tz), **ctx)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f} ms"


def _krw(v: float | None) -> str:
    return "–" if v is None else f"₩{v:,.1f}"


def _num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _dur(v: float | None) -> str:
    if v is None:
        return "–"
    m, s = divmod(int(round(v)), 60)
    return f"{m}:{s:02d}"


def _handler(app: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not self._authorised(url.path, query):
                return
            started = time.perf_counter()
            try:
                self._route(url.path, query)
            except Exception:  # noqa: BLE001 - one bad page must not stop the dashboard
                log.exception("dashboard page %s failed", url.path)
                self._send(500, b"internal error (see the dashboard's log)\n", "text/plain; charset=utf-8")
            log.debug("%s in %.1f ms", url.path, (time.perf_counter() - started) * 1000)

        def _route(self, path: str, query: dict[str, list[str]]) -> None:
            if path == "/":
                days = _int(query, "days", DAYS_DEFAULT, 1, DAYS_MAX)
                self._html(app.overview(days))
            elif path == "/calls":
                self._html(app.calls(_int(query, "page", 1, 1, 1_000_000)))
            elif path.startswith("/calls/") and _CALL_ID.match(path[7:]):
                page = app.call(path[7:])
                self._html(page) if page is not None else self._send(404, b"no such call\n", "text/plain")
            elif path.startswith("/recording/") and _CALL_ID.match(path[11:]):
                file = app.recording(path[11:])
                if file is None:
                    self._send(404, b"recording not on this host\n", "text/plain")
                else:
                    self._send(200, file.read_bytes(), "audio/wav")
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _authorised(self, path: str, query: dict[str, list[str]]) -> bool:
            token = app.token
            if token is None:
                return True
            offered = query.get("token", [""])[0]
            if offered and hmac.compare_digest(offered, token):
                self.send_response(303)  # keep the token out of the address bar and the history
                self.send_header("Location", path)
                self.send_header("Set-Cookie", f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            cookies = dict(p.strip().split("=", 1) for p in self.headers.get("Cookie", "").split(";") if "=" in p)
            if any(v and hmac.compare_digest(v, token) for v in (bearer, cookies.get(COOKIE, ""))):
                return True
            self._send(401, b"token required: open /?token=...\n", "text/plain; charset=utf-8")
            return False

        def _html(self, body: str) -> None:
            self._send(200, body.encode(), "text/html; charset=utf-8")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug("dashboard: " + format, *args)

    return Handler


def _int(query: dict[str, list[str]], name: str, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(query.get(name, [default])[0])))
    except ValueError:
        return default


def make_server(app: Dashboard, listen: tuple[str, int]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(listen, _handler(app))
    httpd.daemon_threads = True
    return httpd


def start_in_thread(app: Dashboard, listen: tuple[str, int] = ("127.0.0.1", 0)) -> ThreadingHTTPServer:
    httpd = make_server(app, listen)
    threading.Thread(target=httpd.serve_forever, name="dashboard", daemon=True).start()
    return httpd


def access_token(cfg: Config, host: str) -> str | None:
    """The token the dashboard demands: required off loopback, optional on it."""
    settings = parse_dashboard(cfg.dashboard)
    token = os.environ.get(settings.token_env) or None
    if token is None and not is_loopback(host):
        raise ConfigError("dashboard.listen", f"{host} is not loopback: set ${settings.token_env} to a token")
    return token


def _catch_up_forever(app: Dashboard) -> None:
    while True:
        try:
            done = app.catch_up()
            if done:
                log.info("analysed %d stored calls that had no analytics", done)
        except Exception:  # noqa: BLE001 - the database may be down; try again later
            log.warning("analytics catch-up failed", exc_info=True)
        time.sleep(CATCH_UP_EVERY_S)


def serve_dashboard(cfg: Config, db: Database, listen: str | None = None) -> int:
    settings = parse_dashboard(cfg.dashboard)
    address = settings.listen
    if listen:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("--listen", f"must be host:port, got {listen!r}")
        address = (host, int(port))
    app = Dashboard(cfg, db, token=access_token(cfg, address[0]))
    httpd = make_server(app, address)
    threading.Thread(target=_catch_up_forever, args=(app,), name="dashboard-analytics", daemon=True).start()
    log.info("dashboard on http://%s:%d/", *httpd.server_address[:2])
    httpd.serve_forever()
    return 0
