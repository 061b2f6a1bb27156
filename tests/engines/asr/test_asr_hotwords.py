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
                                 "aliases:\n  반품: [반품 신청, 교환]\n  쿠폰: [할인권]\n")
    assert hotwords.load(tmp_path, "ecommerce") == ("반품", "교환", "쿠폰", "반품 신청", "할인권")
    assert hotwords.load(tmp_path, "ecommerce", ["우리몰", "쿠폰"]) == (
        "우리몰", "쿠폰", "반품", "교환", "반품 신청", "할인권")


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


def test_an_alias_toward_an_escalation_word_is_rejected(tmp_path):
    path = write(tmp_path, "shop", "terms: [반품]\naliases:\n  반품: [환불]\n")
    with pytest.raises(ValueError, match="escalation word '환불'") as err:
        hotwords.load(tmp_path, "shop")
    assert str(path) in str(err.value)
    write(tmp_path, "shop2", "terms: [환불 규정]\naliases:\n  환불 규정: [환불규정]\n")  # same word, no new bias
    assert hotwords.parse_file(tmp_path / "shop2.yaml") == ("환불 규정", "환불규정")


def test_shipped_packs_bias_toward_no_escalation_word():
    from agent.dialog.escalation import BASE_SENSITIVE

    assert set(BASE_SENSITIVE) <= set(hotwords.ESCALATION_WORDS)
    for path in sorted(REPO_HOTWORDS.glob("*.yaml")):
        words = hotwords.load(REPO_HOTWORDS, path.stem)
        assert words and not [w for w in words if hotwords.escalation_word(w)], path
    assert "환불" not in hotwords.load(REPO_HOTWORDS, "ecommerce")


def test_per_call_then_tenant_then_industry(tmp_path):
    write(tmp_path, "ecommerce", "terms: [반품, 쿠폰, 포인트]\n")
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.txt").write_text(
        "# acme mall\n우리몰\n\n골드회원  # membership tier\n쿠폰\n환불\n", encoding="utf-8")
    per_call = hotwords.parse_variable("김민준, 우리몰 | 상담원 연결,,")
    assert per_call == ("김민준", "우리몰", "상담원 연결")
    assert hotwords.load(tmp_path, "ecommerce", per_call, tenant="acme") == (
        "김민준", "우리몰", "골드회원", "쿠폰", "반품", "포인트")
    assert hotwords.load(tmp_path, "ecommerce", (), tenant="nobody") == ("반품", "쿠폰", "포인트")
    assert hotwords.load(tmp_path, "ecommerce", (), tenant="default") == ("반품", "쿠폰", "포인트")
    with pytest.raises(ValueError, match="tenant name"):
        hotwords.load(tmp_path, "ecommerce", (), tenant="../ecommerce")


def test_merge_drops_escalation_words_long_and_unprintable_terms_and_keeps_the_call_first():
    merged = hotwords.merge_hotwords(("반품", "보상 신청", "쿠폰"), ("우리몰", "x" * 41),
                                     ("골드\x00회원", "VIP 라운지"))
    assert merged == ("VIP 라운지", "우리몰", "반품", "쿠폰")
    many = hotwords.merge_hotwords([f"t{i}" for i in range(300)], [], ["mine"])
    assert len(many) == hotwords.MAX_TERMS and many[0] == "mine"


def test_tenant_file_follows_its_modification_time(tmp_path):
    (tmp_path / "tenants").mkdir()
    path = tmp_path / "tenants" / "acme.txt"
    path.write_text("우리몰\n", encoding="utf-8")
    assert hotwords.tenant_terms(tmp_path, "acme") == ("우리몰",)
    path.write_text("우리몰\n골드회원\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert hotwords.tenant_terms(tmp_path, "acme") == ("우리몰", "골드회원")
