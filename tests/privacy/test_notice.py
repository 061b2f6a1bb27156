"""True words: every greeting a caller can hear (a pack's, or controller.greeting) discloses the AI and says the
call is kept, and never claims a recording that is not made; the secret warning says what the code does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError, parse_config
from agent.dialog import guardrails
from agent.dialog.packs import PACKS_DIR, load_pack, parse_pack
from agent.privacy.pii import mask_text

PACKS = ("ecommerce", "banking", "telecom")


def pack_data(name: str, greeting: str) -> dict:
    data = yaml.safe_load((PACKS_DIR / name / "pack.yaml").read_text(encoding="utf-8"))
    data["greeting"] = greeting
    return data


@pytest.mark.parametrize("name", PACKS)
def test_shipped_greetings_disclose_the_ai_and_the_recording(name: str) -> None:
    greeting = load_pack(name).greeting
    assert "인공지능" in greeting and "녹음" in greeting and "기록" in greeting


@pytest.mark.parametrize(("greeting", "why"), [
    ("안녕하세요, 하늘쇼핑입니다. 통화 내용은 녹음될 수 있습니다. 무엇을 도와드릴까요?", "AI"),
    ("안녕하세요, 저는 인공지능 상담원 하늘이에요. 무엇을 도와드릴까요?", "kept"),
    ("안녕하세요, 저는 인공지능 상담원 하늘이에요. 통화 내용은 녹음됩니다.", "recording on and off"),
])
def test_pack_loader_refuses_a_greeting_that_hides_something(greeting: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_pack(pack_data("ecommerce", greeting), "ecommerce", Path(PACKS_DIR / "ecommerce"))


def test_controller_greeting_is_checked_too() -> None:
    assert "녹음" in parse_config({}).controller.greeting  # the default passes with recording off
    with pytest.raises(ConfigError, match="controller.greeting.*AI"):
        parse_config({"controller": {"greeting": "안녕하세요, 고객센터입니다. 통화는 기록됩니다."}})
    with pytest.raises(ConfigError, match="recording is off"):
        parse_config({"controller": {"greeting": "저는 인공지능 상담원입니다. 통화 내용은 녹음됩니다."}})


def test_controller_greeting_must_mention_a_recording_that_is_made(tmp_path: Path) -> None:
    if "recording_dir" not in parse_config({}).controller.__dataclass_fields__:
        pytest.skip("controller.recording_dir is not part of the configuration yet")
    with pytest.raises(ConfigError, match="recording is on"):
        parse_config({"controller": {"recording_dir": str(tmp_path),
                                     "greeting": "저는 인공지능 상담원입니다. 통화 내용은 기록됩니다."}})
    cfg = parse_config({"controller": {"recording_dir": str(tmp_path),
                                       "greeting": "저는 인공지능 상담원입니다. 통화 내용은 녹음됩니다."}})
    assert "녹음됩니다" in cfg.controller.greeting


def test_the_secret_warning_is_what_the_record_does() -> None:
    """"방금 말씀하신 번호는 상담 기록에서 가렸습니다" is only true because stored text is masked."""
    assert "가렸습니다" in guardrails.SECRET_WARNING
    said = "카드번호는 4532 0151 1283 0366 이고 비밀번호는 4321이에요"
    assert guardrails.contains_secret(said)
    stored = mask_text(said)
    assert "0151" not in stored and "4321" not in stored
