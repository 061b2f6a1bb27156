"""Engine comparison: one normalisation for both engines, only segments both answered, per-segment diffs, and
the promotion rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from lc_samples import write_sample

from agent.lifecycle import compare


def row(engine: str, file: str, hyp: str, ref: str = "삼월 오일에 주문했어요", condition: str = "as given",
        status: str = "ok") -> dict[str, object]:
    return {"engine": engine, "file": file, "condition": condition, "language": "ko", "reference": ref,
            "hypothesis": hyp, "status": status, "rtf": 0.5}


def test_numbers_are_spelled_on_both_sides() -> None:
    assert compare.spell_numbers("3월 5일 1,500원") == "삼월 오일 천오백원"
    assert compare.score("ko", "삼월 오일에 주문했어요", "3월 5일에 주문했어요") == (0, 10)
    assert compare.score("ko", "3월 5일에 주문했어요", "삼 월 오 일에 주문 했어요") == (0, 10)
    assert compare.score("ko", "3월", "4월") == (1, 2)


def test_spec_overrides_the_configured_options() -> None:
    configured = {"vibevoice-transformers": {"model_path": "/m", "device": "cuda"}}
    spec = compare.parse_spec("vibevoice-transformers,adapter=/runs/a/adapter,max_batch=4", configured)
    assert spec.name == "vibevoice-transformers" and spec.label.endswith("max_batch=4")
    assert spec.options == {"model_path": "/m", "device": "cuda", "adapter": "/runs/a/adapter", "max_batch": 4}
    assert compare.parse_spec("vosk", configured).options == {}
    with pytest.raises(ValueError, match="key=value"):
        compare.parse_spec("vosk,oops", configured)


def test_diffs_cover_only_segments_both_engines_answered() -> None:
    files = [row("base", "a.wav", "삼월 오일에 주문했어요"), row("tuned", "a.wav", "3월 5일에 주문했어요"),
             row("base", "b.wav", "사월에 주문"), row("tuned", "b.wav", "삼월 오일에 주문했어요"),
             row("base", "c.wav", "", status="error: timeout"), row("tuned", "c.wav", "삼월")]
    out = compare.compare(files, ["base", "tuned"])
    assert [d["file"] for d in out["diffs"]] == ["a.wav", "b.wav"]
    a, b = out["diffs"]
    assert a["best"] == "tie" and a["engines"]["tuned"]["edits"] == 0
    assert b["best"] == "tuned" and b["engines"]["base"]["hypothesis"] == "사월에 주문"
    totals = {t["engine"]: t for t in out["totals"]}
    assert totals["base"]["segments"] == totals["tuned"]["segments"] == 2
    assert totals["tuned"]["edits"] == 0 and totals["base"]["edits"] == compare.score("ko", a["reference"],
                                                                                       "사월에 주문")[0]


def totals(base: float, cand: float, n: int = 300, condition: str = "as given") -> list[dict[str, object]]:
    return [{"engine": "base", "condition": condition, "segments": n, "error_rate": base},
            {"engine": "tuned", "condition": condition, "segments": n, "error_rate": cand}]


def test_promotion_rule() -> None:
    assert compare.decide(totals(0.20, 0.17), totals(0.134, 0.136), "base", "tuned").promote
    too_small = compare.decide(totals(0.20, 0.195), [], "base", "tuned")
    assert not too_small.promote and "-0.50" not in too_small.reasons[0] and "+0.50 points" in too_small.reasons[0]
    assert not compare.decide(totals(0.40, 0.385), [], "base", "tuned").promote  # 1.5 points but < 5 % of 40 %
    few = compare.decide(totals(0.20, 0.10, n=50), [], "base", "tuned")
    assert not few.promote and "50 segments" in few.reasons[0]
    worse_elsewhere = compare.decide(totals(0.20, 0.15), totals(0.134, 0.145, condition="8 kHz μ-law"), "base",
                                     "tuned")
    assert not worse_elsewhere.promote and "shared recordings, 8 kHz μ-law" in worse_elsewhere.reasons[0]
    slow = compare.decide(totals(0.20, 0.15), [], "base", "tuned", rtf={"base": 0.1, "tuned": 0.13})
    assert not slow.promote and "real-time factor" in slow.reasons[0]
    deaf = compare.decide(totals(0.20, 0.15), [], "base", "tuned", recall={"base": 0.8, "tuned": 0.7})
    assert not deaf.promote and "hotword recall" in deaf.reasons[0]
    assert not compare.decide([], [], "base", "tuned").promote


def test_dataset_rows_leave_masked_items_out_of_the_reference(tmp_path: Path) -> None:
    write_sample(tmp_path / "dev", "c_0002", "카드번호 [카드번호 ****1111] 이에요", 1.0, seed=1)
    (r,) = compare.dataset_rows(tmp_path)
    assert r.reference == "카드번호 이에요" and r.language == "ko" and r.file == str(tmp_path / "dev/c_0002.wav")


def test_bench_compares_named_engines_on_the_shared_recordings(speech_dir: Path) -> None:
    from agent.ops.bench import asr

    rows = asr._pick(asr.load_manifest(speech_dir), quick=True)
    korean = next(r for r in rows if r.language == "ko")

    class Cfg:  # the parts of Config that asr.run reads
        class worker:  # noqa: N801
            asr_options = {"fake": {"text": "설정된 문장"}}
            asr_engine = "fake"
            hotwords_dir = str(speech_dir / "no-hotwords")

        @staticmethod
        def path(p: str) -> Path:
            return Path(p)

    good = f"fake,text={korean.reference}"
    result = asr.run(Cfg, speech_dir, quick=True, engines=["fake", good, "fake,unavailable=true"])  # type: ignore[arg-type]
    assert [e["status"] for e in result["engines"]][:2] == ["ok", "ok"]
    assert result["engines"][2]["status"].startswith("unavailable")
    assert result["comparison"]["engines"] == ["fake", good]  # the engines that ran
    two = asr.run(Cfg, speech_dir, quick=True, engines=["fake", good])  # type: ignore[arg-type]
    diffs = two["comparison"]["diffs"]
    assert {d["condition"] for d in diffs} == set(asr.CONDITIONS)
    assert len(diffs) == 2 * len(rows)  # every file, both conditions, both engines
    mine = [d for d in diffs if d["reference"] == korean.reference]
    assert mine and all(d["engines"][good]["edits"] == 0 and d["best"] == good for d in mine)
    assert all(d["engines"]["fake"]["hypothesis"] == "설정된 문장" for d in diffs)
