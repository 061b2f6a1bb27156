"""The whole utterance list through every place a caller's words go: the database row and the disk spool (via
the call record), a log line (via the installed filter) and the LLM request (via the dialog state and the
vault, over real HTTP). No positive's secret survives anywhere; every negative arrives as said."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pii import NEGATIVE, POSITIVE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dialog"))

from dialog_llm_server import OpenAIServer  # noqa: E402
from dialog_support import FakeClock  # noqa: E402

from agent.call.channel import ChannelInfo  # noqa: E402
from agent.call.record import CallRecord  # noqa: E402
from agent.dialog.llm import LlmClient  # noqa: E402
from agent.dialog.llm_policy import LlmPolicy  # noqa: E402
from agent.dialog.packs import load_pack  # noqa: E402
from agent.dialog.policy import CallInfo  # noqa: E402
from agent.dialog.settings import parse_dialog_settings  # noqa: E402
from agent.privacy.logs import install_log_filter  # noqa: E402
from agent.store.calls import CallStore, now_utc  # noqa: E402
from agent.store.db import Database  # noqa: E402

SAID = [text for text, _, _ in POSITIVE]
SECRETS = [(text, secret) for text, secret, _ in POSITIVE]


def _assert_absent(dump: str) -> None:
    for text, secret in SECRETS:
        # Short fragments ("12", or "5678" in a kept last-four) occur legitimately elsewhere; the row of that
        # utterance is checked for them instead.
        if len(secret) >= 6:
            assert secret not in dump, (text, secret)


def _store(database: Database | None, spool: Path, call_id: str, texts: list[str]) -> None:
    store = CallStore(database, spool)
    record = CallRecord(store, ChannelInfo(uuid=call_id, caller="01055550000"))
    for text in texts:
        record.turn(record.next_turn_seq(), "caller", text, started_at=now_utc(), source="asr")
    assert store.flush(20)
    store.close()


def _texts(db: Database, call_id: str) -> list[str]:
    with db.connection() as conn:
        return [r["text"] for r in conn.execute("SELECT text FROM turns WHERE call_id = %s ORDER BY seq",
                                                (call_id,))]


def test_database_and_spool(db: Database, tmp_path: Path) -> None:
    _store(db, tmp_path / "db", "pos", SAID)
    _store(None, tmp_path / "spool", "pos-spooled", SAID)
    _store(db, tmp_path / "neg", "neg", NEGATIVE)
    rows = _texts(db, "pos")
    spooled = "\n".join(p.read_text(encoding="utf-8") for p in (tmp_path / "spool").rglob("*") if p.is_file())
    assert "pos-spooled" in spooled
    _assert_absent(json.dumps(rows, ensure_ascii=False) + spooled)
    for (text, secret, label), stored in zip(POSITIVE, rows, strict=True):
        assert secret not in stored and label in stored, (text, stored)
    assert _texts(db, "neg") == NEGATIVE


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    install_log_filter()
    yield stream
    root.handlers[:] = saved
    root.setLevel(level)


def test_log_lines(log_stream: io.StringIO) -> None:
    log = logging.getLogger("agent.call.turn")
    for text in SAID:
        log.info("caller said: %s", text)
    lines = log_stream.getvalue().splitlines()
    assert len(lines) == len(SAID)
    _assert_absent("\n".join(lines))
    for (text, secret, label), line in zip(POSITIVE, lines, strict=True):
        assert secret not in line and label in line, (text, line)
    for text in NEGATIVE:
        log.info("caller said: %s", text)
    assert log_stream.getvalue().splitlines()[len(SAID):] == [f"caller said: {t}" for t in NEGATIVE]


def test_llm_requests(db: Database) -> None:
    with OpenAIServer(lambda body, n: [("text", "네, 확인해 볼게요.")]) as srv:
        settings = parse_dialog_settings({"policy": "llm", "pack": "ecommerce",
                                          "llm": {"model": "openai/qwen-test", "api_base": srv.base}})
        client = LlmClient(model="openai/qwen-test", api_base=srv.base, max_tokens=50)
        policy = LlmPolicy(settings=settings, pack=load_pack("ecommerce"), llm=client, crm=None, kb=None,
                           clock=FakeClock())
        # The history holds at most 40 messages: a conversation per slice of the list.
        for start in range(0, len(SAID), 15):
            conv = policy.open(CallInfo(call_id=f"u{start}"))
            for text in SAID[start:start + 15]:
                conv.state.add_caller(text)  # what every caller turn goes through before a policy answers
            list(conv.respond("네 그럼 확인 부탁드려요", "asr"))
        negatives = policy.open(CallInfo(call_id="neg"))
        for text in NEGATIVE[:30]:
            negatives.state.add_caller(text)
        list(negatives.respond("네 그럼 확인 부탁드려요", "asr"))
    bodies = srv.requests
    assert len(bodies) == len(range(0, len(SAID), 15)) + 1
    _assert_absent(json.dumps(bodies[:-1], ensure_ascii=False))
    users = [m["content"] for body in bodies[:-1] for m in body["messages"] if m["role"] == "user"]
    for (text, secret, _), sent in zip(POSITIVE, [u for u in users if u != "네 그럼 확인 부탁드려요"], strict=True):
        assert secret not in sent, (text, sent)
    sent_negatives = [m["content"] for m in bodies[-1]["messages"] if m["role"] == "user"]
    assert sent_negatives[:30] == NEGATIVE[:30]
