"""The ASR benchmark's scoring: CER/WER per file, corpus totals, references, engines and language gating."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from agent.config import parse_config
from agent.engines.asr.fake import FakeAsr
from agent.engines.errors import EngineError
from agent.ops.bench import asr
from agent.ops.bench.report import asr_md


def _row(engine="vosk", condition="as given", language="ko", edits=1, units=10, audio=2.0, proc=0.5, **kw):
    return {"engine": engine, "condition": condition, "language": language, "edits": edits, "ref_units": units,
            "duration_s": audio, "proc_s": proc, **kw}


def test_totals_are_corpus_rates_not_means_of_file_rates():
    rows = [_row(edits=1, units=10, audio=2.0, proc=0.5), _row(edits=9, units=30, audio=6.0, proc=1.5),
            _row(condition="8 kHz μ-law", edits=20, units=40, audio=8.0, proc=4.0),
            _row(language="en", edits=None, units=None, status="n/a — no English model for this engine")]
    totals = asr.aggregate(rows)
    assert [(t["condition"], t["language"]) for t in totals] == [("as given", "ko"), ("8 kHz μ-law", "ko")]
    given, phone = totals
    assert given["error_rate"] == pytest.approx(10 / 40)   # the mean of 10 % and 30 % would be 20 %
    assert given["files"] == 2 and given["edits"] == 10 and given["ref_units"] == 40
    assert given["rtf"] == pytest.approx(2.0 / 8.0) and given["metric"] == "CER"
    assert phone["error_rate"] == pytest.approx(0.5) and phone["rtf"] == pytest.approx(0.5)


def test_no_scored_rows_gives_no_totals():
    assert asr.aggregate([]) == []


def test_korean_is_scored_by_characters_without_spaces_english_by_words():
    assert asr.score("ko", "동료 인 장동 련", "동료인 장동련") == (0, 6)
    assert asr.score("ko", "지난해 삼 월", "지난해 3 월") == (1, 5)
    assert asr.score("en", "HELLO BERTIE ANY GOOD", "hello, bertie: any food") == (1, 4)
    assert asr.metric_for("ko") == "CER" and asr.metric_for("en") == "WER"


def test_speaker_labels_are_removed_from_multi_speaker_references():
    assert asr.clean_reference("Diane: Hello? | Sheila: Neither did I.") == "Hello? Neither did I."
    assert asr.clean_reference("LEFT: He began. | RIGHT: The horizon") == "He began. The horizon"
    assert asr.clean_reference("Mr quilter is the apostle") == "Mr quilter is the apostle"


def test_manifest_rows_without_a_transcript_are_skipped(tmp_path):
    head = "file\tlanguage\tduration_s\tsample_rate\tspeakers\treference_transcript\tsource_repo\n"
    (tmp_path / "MANIFEST.tsv").write_text(
        head + "a.wav\tko\t1.5\t16000\t1\t안녕 하세요\tx\nb.wav\tko\t2.0\t16000\t1\t-\tx\n"
        "c.wav\ten\t3.0\t16000\t1\tHE SAID \"NO\"\tx\n", encoding="utf-8")
    rows = asr.load_manifest(tmp_path)
    assert [(r.file, r.language, r.reference) for r in rows] == [("a.wav", "ko", "안녕 하세요"),
                                                                 ("c.wav", "en", 'HE SAID "NO"')]


def test_engines_are_vosk_plus_the_configured_ones_never_the_fake():
    assert asr.engine_names(parse_config({})) == ["vosk"]
    cfg = parse_config({"worker": {"asr": {"engine": "vibevoice-vllm", "engines": {"fake": {}, "vosk": {}}}}})
    assert asr.engine_names(cfg) == ["vosk", "vibevoice-vllm"]


@pytest.fixture
def speech(tmp_path):
    rate = 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    for name in ("ko.wav", "en.wav"):
        sf.write(tmp_path / name, tone, rate)
    return tmp_path, [asr.SpeechRow("ko.wav", "ko", 1.0, "안녕하세요"), asr.SpeechRow("en.wav", "en", 1.0, "HELLO")]


def test_score_engine_runs_both_conditions_and_gates_languages(speech):
    speech_dir, rows = speech
    engine = FakeAsr(text="안녕하세요")
    out, problem = asr.score_engine("vosk", engine, rows, speech_dir)
    assert problem is None
    ko = [r for r in out if r["language"] == "ko"]
    assert [r["condition"] for r in ko] == list(asr.CONDITIONS)
    assert all(r["status"] == "ok" and r["edits"] == 0 and r["rtf"] >= 0 for r in ko)
    assert [c.sample_rate for c in engine.calls] == [16000, asr.ENGINE_RATE]
    en = [r for r in out if r["language"] == "en"]
    assert len(en) == 2 and all(r["status"] == "n/a — no English model for this engine" for r in en)
    # An engine without a language list is asked about every row.
    out, _ = asr.score_engine("other", FakeAsr(text="hello"), rows, speech_dir)
    assert all(r["status"] == "ok" for r in out) and len(out) == 4


def test_engine_failing_before_any_result_is_reported_unavailable(speech):
    speech_dir, rows = speech
    out, problem = asr.score_engine("other", FakeAsr(fail="connection refused"), rows, speech_dir)
    assert out == [] and problem.startswith("unavailable:") and "connection refused" in problem
    with pytest.raises(EngineError):
        FakeAsr(fail="x").transcribe(np.zeros(10, np.int16), 16000, None)


def test_markdown_lists_totals_and_per_file_rows(speech):
    speech_dir, rows = speech
    files, _ = asr.score_engine("vosk", FakeAsr(text="안녕"), rows, speech_dir)
    md = asr_md({"engines": [{"engine": "vosk", "status": "ok", "load_s": 1.0}], "files": files,
                 "totals": asr.aggregate(files)})
    assert "| vosk | ko | as given | 1 |" in md and "60.0 %" in md   # 3 of 5 characters missing
    assert "n/a — no English model for this engine" in md
