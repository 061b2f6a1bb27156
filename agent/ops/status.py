"""The controller's ops HTTP listener and `callagent status`.

One listener (`controller.metrics_listen`) serves `/metrics` (Prometheus), `/ready` (false from the first moment of
a drain, for Kubernetes and load balancers), `/live`, `/status` (live calls as JSON) and `POST /drain` (loopback
clients only: a Kubernetes preStop hook or an operator on the host). It runs in its own thread
so a scrape or probe never waits on the call hub; it only copies the controller's plain attributes.
`callagent status` reads `/status` from every host in `controller.status_urls`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 3.0
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
LAST_TURN_CHARS = 40


class Observed(Protocol):
    """What the ops listener needs from a controller."""

    ready: bool

    def snapshot(self) -> dict[str, Any]: ...


def describe_call(session: Any, age_s: float, overflow: bool = False,
                  now: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """One live call for `/status`: id, state, age, seconds since the caller or agent last spoke.

    A session may offer `snapshot() -> dict` with more (turns, last turn); its keys win.
    """
    out: dict[str, Any] = {"call_id": None, "state": "connecting", "age_s": round(age_s, 1), "overflow": overflow}
    if session is None:
        return out
    channel = getattr(session, "channel", None)
    if channel is not None:
        out["call_id"] = channel.uuid
        out["industry"] = getattr(channel, "industry", "") or ""
    out["state"] = getattr(session, "state", "?")
    last = getattr(session, "last_activity", None)
    if isinstance(last, float):
        out["last_activity_s"] = round(max(0.0, now() - last), 1)
    turn = getattr(session, "turn", None)
    out["in_turn"] = turn is not None and not getattr(turn, "done", True)
    snapshot = getattr(session, "snapshot", None)
    if callable(snapshot):
        try:
            out.update(snapshot())
        except Exception:  # noqa: BLE001 - a status page must not fail on one call
            log.debug("call snapshot failed", exc_info=True)
    return out


class OpsServer:
    """`/metrics`, `/ready`, `/live`, `/status` on one port, in a daemon thread."""

    def __init__(self, controller: Observed, registry: CollectorRegistry | None, listen: tuple[str, int],
                 drain: Callable[[], None] | None = None):
        self.controller = controller
        self.registry = registry
        self.drain = drain  # thread-safe: schedules the drain on the controller's hub
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer(listen, handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("ops listener on http://%s:%d (/metrics /ready /live /status)", *self.httpd.server_address[:2])
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def status(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), **self.controller.snapshot()}


def _handler(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics" and ops.registry is not None:
                self._send(200, generate_latest(ops.registry), CONTENT_TYPE_LATEST)
            elif path == "/ready":
                ready = ops.controller.ready
                self._send(200 if ready else 503, b"ready\n" if ready else b"not ready (draining)\n")
            elif path == "/live":
                self._send(200, b"ok\n")
            elif path == "/status":
                body = json.dumps(ops.status(), ensure_ascii=False).encode()
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != "/drain" or ops.drain is None:
                self._send(404, b"not found\n")
            elif self.client_address[0] not in LOOPBACK:
                self._send(403, b"drain only from the host itself\n")
            else:
                ops.drain()
                self._send(202, b"draining\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - probes every few seconds: quiet
            pass

    return Handler


# `callagent status` ------------------------------------------------------------------------------------


def fetch_status(urls: Sequence[str], timeout: float = FETCH_TIMEOUT_S) -> list[dict[str, Any]]:
    """`/status` of each host; an unreachable host is reported, not raised."""
    import httpx

    out: list[dict[str, Any]] = []
    for url in urls:
        try:
            resp = httpx.get(f"{url.rstrip('/')}/status", timeout=timeout)
            resp.raise_for_status()
            out.append({"url": url, **resp.json()})
        except (httpx.HTTPError, ValueError) as exc:
            out.append({"url": url, "error": f"{type(exc).__name__}: {exc}"})
    return out


def add_last_turns(db: Any, hosts: Sequence[dict[str, Any]], now: datetime | None = None) -> None:
    """Adds each live call's last stored turn (speaker, seconds ago, start of the text) from PostgreSQL."""
    ids = [c["call_id"] for h in hosts for c in h.get("calls", []) if c.get("call_id")]
    if not ids:
        return
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (call_id) call_id, speaker, started_at, text FROM turns "
            "WHERE call_id = ANY(%s) ORDER BY call_id, seq DESC", (ids,)).fetchall()
    last = {r["call_id"]: r for r in rows}
    now = now or datetime.now(UTC)
    for h in hosts:
        for c in h.get("calls", []):
            row = last.get(c.get("call_id"))
            if row is not None:
                text = row["text"] if len(row["text"]) <= LAST_TURN_CHARS else row["text"][:LAST_TURN_CHARS] + "…"
                c["last_turn"] = {"speaker": row["speaker"], "text": text,
                                  "ago_s": round((now - row["started_at"]).total_seconds(), 1)}


def render_status(hosts: Sequence[Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for h in hosts:
        if "error" in h:
            lines.append(f"{h['url']}  UNREACHABLE  {h['error']}")
            continue
        mode = "draining" if h.get("draining") else ("accepting" if h.get("accepting") else "full")
        lines.append(f"{h['url']}  {h.get('host', '?')}  {h.get('listen', '')}  {mode}  "
                     f"{h.get('active', 0)}/{h.get('max_calls', '?')} calls")
        for c in h.get("calls", []):
            idle = c.get("last_activity_s")
            lines.append(f"  {c.get('call_id') or '-':36}  {c.get('state', '?'):11}  age {c.get('age_s', 0):7.1f}s"
                         + (f"  idle {idle:5.1f}s" if idle is not None else "")
                         + ("  in turn" if c.get("in_turn") else ""))
            turn = c.get("last_turn")
            if turn:
                lines.append(f"      last: {turn['speaker']} {turn['ago_s']:.1f}s ago  {turn['text']}")
    return "\n".join(lines)


def drain_and_wait(url: str, wait_s: float, poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> int:
    """`callagent drain`: starts a drain and waits until no call is left (or the controller has exited).
    Returns 0 when drained, 1 when calls were still up after `wait_s`."""
    import httpx

    url = url.rstrip("/")
    try:
        httpx.post(f"{url}/drain", timeout=FETCH_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError as exc:
        print(f"drain: {url}: {exc}")
        return 0 if isinstance(exc, httpx.ConnectError) else 1  # nothing listening: nothing to drain
    waited = 0.0
    while waited <= wait_s:
        try:
            active = httpx.get(f"{url}/status", timeout=FETCH_TIMEOUT_S).json().get("active", 0)
        except httpx.HTTPError:
            return 0  # the controller finished its drain and exited
        if not active:
            return 0
        sleep(poll_s)
        waited += poll_s
    return 1
