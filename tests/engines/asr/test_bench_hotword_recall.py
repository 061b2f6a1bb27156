"""`bench asr` asks each file with its hotwords and reports how many the engine wrote back."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from agent.config import parse_config
from agent.engines.asr.fake import FakeAsr
from agent.ops.bench import asr
from agent.ops.bench.report import asr_md


def test_hotwords_are_the_pack_terms_the_reference_contains_else_its_longest_words() -> None:
    ref = "새벽배송 으로 시킨 거 반품 하고 싶어요"
    assert asr.hotwords_for(ref, ("반품", "새벽배송", "쿠폰")) == ("반품", "새벽배송")
    news = "현재 백화점과 영화관 등 은 오픈 해 테마파크 공사는 이천 십 팔 년"
    assert asr.hotwords_for(news, ("쿠폰",)) == ("백화점과", "테마파크", "영화관")
    assert asr.hotwords_for("네 네", ()) == ()


def test_recall_ignores_spaces_and_case() -> None:
    assert asr.recalled(("새벽배송", "LTE", "반품"), "새벽 배송 lte 로 바꿔 주세요") == 2
    assert asr.recalled((), "anything") == 0


def test_engine_gets_the_hotwords_and_totals_report_recall(tmp_path) -> None:
    rate = 16000
    sf.write(tmp_path / "a.wav", np.zeros(rate, np.float32), rate)
    rows = [asr.SpeechRow("a.wav", "ko", 1.0, "새벽배송 으로 시킨 거 반품 하고 싶어요")]
    engine = FakeAsr(text="새벽 배송으로 시킨 거 반붐하고 싶어요")
    out, problem = asr.score_engine("other", engine, rows, tmp_path, ("반품", "새벽배송"))
    assert problem is None
    assert [c.context.hotwords for c in engine.calls] == [("반품", "새벽배송")] * 2
    assert [(r["hotwords"], r["hotword_hits"]) for r in out] == [(["반품", "새벽배송"], 1)] * 2
    [given, phone] = asr.aggregate(out)
    assert (given["hotwords"], given["hotword_hits"]) == (2, 1) and given["hotword_recall"] == pytest.approx(0.5)
    md = asr_md({"engines": [{"engine": "other", "status": "ok"}], "files": out, "totals": [given, phone]})
    assert "Hotword recall" in md and "50.0 % (1/2)" in md


def test_run_uses_the_shipped_packs(tmp_path) -> None:
    cfg = parse_config({}, base_dir=str(tmp_path))
    assert asr._pack_terms(cfg) == ()  # no hotwords folder there
    repo = parse_config({"worker": {"hotwords_dir": str(asr.Path(__file__).resolve().parents[3] / "hotwords")}})
    terms = asr._pack_terms(repo)
    assert "새벽배송" in terms and "적금" in terms and "환불" not in terms
