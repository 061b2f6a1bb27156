"""Hotword packs: terms then alias spellings, tenant extras first, de-duplicated, capped, cached by mtime."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.engines.asr import hotwords

REPO_HOTWORDS = Path(__file__).resolve().parents[3] / "hotwords"


def write(directory: Path, industry: str, text: str) -> Path:
    path = directory / f"{industry}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_terms_then_aliases_deduplicated_in_order(tmp_path):
    write(tmp_path, "ecommerce", "industry: ecommerce\nterms: [반품, 교환, 반품, 쿠폰]\n"
                                 "aliases:\n  반품: [환불, 교환]\n  쿠폰: [할인권]\n")
    assert hotwords.load(tmp_path, "ecommerce") == ("반품", "교환", "쿠폰", "환불", "할인권")
    assert hotwords.load(tmp_path, "ecommerce", ["우리몰", "쿠폰"]) == (
        "우리몰", "쿠폰", "반품", "교환", "환불", "할인권")


def test_the_list_is_capped_and_tenant_extras_survive_the_cap(tmp_path):
    terms = ", ".join(f"term{i}" for i in range(500))
    write(tmp_path, "big", f"terms: [{terms}]\n")
    words = hotwords.load(tmp_path, "big", ["tenant-brand"])
    assert len(words) == hotwords.MAX_TERMS and words[0] == "tenant-brand"


def test_missing_file_is_empty_with_one_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=hotwords.__name__):
        assert hotwords.load(tmp_path, "nothing-here") == ()
        assert hotwords.load(tmp_path, "nothing-here", ["x"]) == ("x",)
    assert len([r for r in caplog.records if "nothing-here" in r.getMessage()]) == 1
    assert hotwords.load(tmp_path, "", ["x", "x"]) == ("x",)


@pytest.mark.parametrize("text, needle", [
    ("terms: [a\n", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    ("industry: x\n", "terms"),
    ("terms: [a, 3]\n", "terms"),
    ("terms: [a]\naliases: [b]\n", "aliases"),
    ("terms: [a]\naliases: {a: b}\n", "aliases"),
    ("terms: [a]\nsynonyms: {}\n", "unknown key 'synonyms'"),
])
def test_malformed_file_is_a_value_error_naming_the_file(tmp_path, text, needle):
    path = write(tmp_path, "broken", text)
    with pytest.raises(ValueError, match=needle) as err:
        hotwords.load(tmp_path, "broken")
    assert str(path) in str(err.value)


def test_industry_name_cannot_escape_the_directory(tmp_path):
    with pytest.raises(ValueError, match="industry name"):
        hotwords.load(tmp_path, "../etc/passwd")


def test_cache_follows_the_file_modification_time(tmp_path, monkeypatch):
    path = write(tmp_path, "telecom", "terms: [요금제]\n")
    assert hotwords.load(tmp_path, "telecom") == ("요금제",)
    parsed: list[Path] = []
    real_parse = hotwords.parse_file
    monkeypatch.setattr(hotwords, "parse_file", lambda p: parsed.append(p) or real_parse(p))
    assert hotwords.load(tmp_path, "telecom") == ("요금제",)
    assert parsed == []  # served from the cache
    path.write_text("terms: [요금제, 데이터]\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert hotwords.load(tmp_path, "telecom") == ("요금제", "데이터")
    assert parsed == [path]


@pytest.mark.skipif(not REPO_HOTWORDS.is_dir(), reason="no hotwords/ folder in this checkout")
def test_the_shipped_hotword_packs_parse():
    packs = sorted(REPO_HOTWORDS.glob("*.yaml"))
    for pack in packs:
        words = hotwords.load(REPO_HOTWORDS, pack.stem)
        assert words and len(words) <= hotwords.MAX_TERMS, pack
