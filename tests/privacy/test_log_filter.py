"""Log lines never carry a caller's personal data: message text, arguments and tracebacks are masked once
`install_log_filter()` has run, on plain handlers and on the shared JSON/text pipeline."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from agent.ops import logs
from agent.privacy.logs import install_log_filter

SAID = "카드번호는 4532 0151 1283 0366 이고 연락처는 010-1234-5678이에요"


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def _log_everything(log: logging.Logger) -> None:
    log.info("heard %s", SAID)
    log.warning("summary: " + SAID)
    try:
        raise ValueError(f"tool failed for {SAID}")
    except ValueError:
        log.exception("turn failed")


def _assert_clean(text: str) -> None:
    assert "0151" not in text and "1234-5678" not in text and "4532" not in text
    assert text.count("[카드번호 ****0366]") >= 3 and "[전화번호 ****5678]" in text
    assert "turn failed" in text and "ValueError" in text


def test_plain_handler(root_stream: io.StringIO) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(root_stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    install_log_filter()
    _log_everything(logging.getLogger("agent.call.turn"))
    _assert_clean(root_stream.getvalue())


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_shared_pipeline(root_stream: io.StringIO, fmt: str) -> None:
    logs.configure_logging("INFO", fmt, stream=root_stream)
    install_log_filter()
    _log_everything(logging.getLogger("agent.dialog.llm_policy"))
    _assert_clean(root_stream.getvalue())
