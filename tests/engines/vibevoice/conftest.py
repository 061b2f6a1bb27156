"""Fixtures: real loopback servers for the VibeVoice client engines, and the Realtime stand-in package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vv_standin
from vv_servers import FakeStreamingAsr, ScriptedOpenAI, start_openai, start_streaming


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAI]:
    script, server, thread = start_openai()
    yield script
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def streaming_server() -> Iterator[FakeStreamingAsr]:
    fake = FakeStreamingAsr()
    server, thread = start_streaming(fake)
    yield fake
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in `vibevoice` package on sys.path; yields its model module (TRACE, CHUNK_DELAY_S)."""
    monkeypatch.syspath_prepend(str(vv_standin.install(tmp_path / "site")))
    import vibevoice.modular.modeling_vibevoice_streaming_inference as model_module

    yield model_module
    vv_standin.unload()


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, str]:
    pytest.importorskip("torch")
    return vv_standin.write_model_dir(tmp_path / "models")
