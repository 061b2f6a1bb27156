"""Analytics at call end through the real call store, the `callagent analyze` backfill, and LLM token usage."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

from psycopg.conninfo import conninfo_to_dict

from agent.analytics.runner import instrument
from agent.config import parse_config
from agent.dialog import llm
from agent.ops import cli
from agent.ops.stats import ControllerStats
from agent.store.calls import CallStore, now_utc
from tests.analytics.seed import T0, caller, insert_call, reply


def _count(db, sql: str = "SELECT count(*) AS n FROM call_analytics") -> int:
    with db.connection() as conn:
        return conn.execute(sql).fetchone()["n"]


def test_a_call_ending_through_the_store_is_analysed_and_counted(db, tmp_path):
    deps = SimpleNamespace(stats=ControllerStats(), store=CallStore(db, tmp_path / "spool"))
    runner = instrument(deps, db, parse_config({}))
    store = deps.store
    store.submit("call_start", call_id="live-1", caller="010", destination="1588", industry="ecommerce",
                 started_at=now_utc(), variables={})
    store.submit("turn", call_id="live-1", seq=1, speaker="caller", text="주문 조회요", started_at=now_utc(),
                 source="asr", engine="vosk", asr_ms=100.0, eos_wait_ms=800.0,
                 detail={"start": 1.0, "end": 2.5, "asr_wait_ms": 30.0})
    store.submit("turn", call_id="live-1", seq=2, speaker="agent", text="주문번호를 말씀해 주세요.",
                 started_at=now_utc(), ended_at=now_utc(), source="policy", eos_wait_ms=800.0, asr_ms=100.0,
                 first_audio_ms=250.0, detail={"tools": [], "llm_usage": {"prompt_tokens": 500,
                                                                          "completion_tokens": 20}})
    store.submit("call_end", call_id="live-1", ended_at=now_utc(), end_reason="agent_hangup")
    # Waits for the analysis thread; the bound only guards against a hang.
    deadline = time.monotonic() + 30
    while runner.stats["analyzed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.close()
    store.close()
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM call_analytics WHERE call_id = 'live-1'").fetchone()
    assert row is not None and row["gaps_ms"] == [1080.0] and row["llm_prompt_tokens"] == 500
    assert row["caller_speech_s"] == 1.5 and row["resolution"] == "resolved"
    assert deps.stats.calls_started == 1 and deps.stats.calls_ended[("completed", "agent_hangup")] == 1
    assert deps.stats.calls_analyzed == 1 and deps.stats.cost_krw["telephony"] == row["cost"]["telephony_krw"]


def test_backfill_since(db, monkeypatch, capsys, tmp_path):
    for i, day in enumerate((1, 2, 3)):
        insert_call(db, f"b-{i}", T0.replace(day=day), [caller(1, T0, "배송 조회요", 1.0, 2.0),
                                                         reply(2, T0, "네.", played_s=1.0)])
    insert_call(db, "b-live", T0, [], duration_s=None)
    parts = conninfo_to_dict(db.dsn)  # key=value form, host first: what the config accepts
    monkeypatch.setenv("CALLAGENT_DB_DSN", " ".join(f"{k}={v}" for k, v in sorted(parts.items(),
                                                                                 key=lambda kv: kv[0] != "host")))
    monkeypatch.delenv("CALLAGENT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no callagent.yaml: the defaults
    assert cli.main(["analyze", "--since", "2026-11-02T00:00:00+00:00"]) == 0
    assert "analyzed 2 calls" in capsys.readouterr().out
    assert _count(db) == 2
    assert cli.main(["analyze"]) == 0  # only the missing one; the live call has nothing to analyse
    assert "analyzed 1 calls" in capsys.readouterr().out and _count(db) == 3
    assert cli.main(["analyze", "--all"]) == 0 and "analyzed 3 calls" in capsys.readouterr().out


def test_llm_stream_asks_for_usage_and_reports_it():
    """An OpenAI-compatible stream with `stream_options.include_usage`: the last chunk has empty choices and
    the usage (platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options)."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
            for data in ({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "네, "}}]},
                         {**base, "choices": [{"index": 0, "delta": {"content": "확인했습니다."},
                                               "finish_reason": "stop"}]},
                         {**base, "choices": [], "usage": {"prompt_tokens": 812, "completion_tokens": 9,
                                                           "total_tokens": 821}}):
                self.wfile.write(f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = llm.LlmClient(model="openai/test-usage", api_base=f"http://127.0.0.1:{httpd.server_port}/v1")
        usage: list[tuple[int, int]] = []
        before = llm.TOKEN_COUNTS[("openai/test-usage", "prompt")]
        parts = list(client.stream([{"role": "user", "content": "hi"}], deadline=time.monotonic() + 60,
                                   on_usage=lambda p, c: usage.append((p, c))))
    finally:
        httpd.shutdown()
    assert "".join(p for p in parts if isinstance(p, str)) == "네, 확인했습니다."
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert usage == [(812, 9)]
    assert llm.TOKEN_COUNTS[("openai/test-usage", "prompt")] - before == 812
    assert llm.TOKEN_COUNTS[("openai/test-usage", "completion")] >= 9
