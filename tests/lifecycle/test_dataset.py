"""`callagent dataset export` and `dataset review`: sealed recordings and stored turns in PostgreSQL become
VibeVoice-ASR fine-tuning samples: the caller's channel cut at each turn, reviewed text, personal data masked
and its audio silenced or the segment dropped, split by call."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from recorded import RATE, Said, record_call

from agent.lifecycle import dataset
from agent.lifecycle.review import ReviewError, save_review
from agent.privacy.keys import Keyring
from agent.store.calls import CallStore

CARD = "카드번호 4111 1111 1111 1111 이에요 확인해 주세요"
CARD_MASKED = "카드번호 [카드번호 ****1111] 이에요 확인해 주세요"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.of(bytes(range(32)))


@pytest.fixture
def store(db, tmp_path: Path):  # noqa: ANN001, ANN201
    s = CallStore(db, tmp_path / "spool")
    yield s
    s.close()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def test_split_is_by_call_and_stable() -> None:
    ids = [f"call-{i:04d}" for i in range(2000)]
    counts = Counter(dataset.split_of(c) for c in ids)
    assert 1500 < counts["train"] < 1700 and 140 < counts["dev"] < 260 and 140 < counts["test"] < 260
    assert [dataset.split_of(c) for c in ids[:50]] == [dataset.split_of(c) for c in ids[:50]]
    assert dataset.split_of("call-0001", dev=0.0, test=0.0) == "train"


def test_export_cuts_the_caller_channel_at_each_turn(db, store, keyring, tmp_path: Path) -> None:  # noqa: ANN001
    said = [Said("배송 조회 부탁드려요", 1.0, 2.2, level=3000), Said("언제 도착하나요", 4.0, 5.0, level=9000)]
    record_call(db, store, keyring, tmp_path / "rec", "call-a", said, offset_s=0.6)
    assert not (tmp_path / "rec" / "call-a.wav").exists()  # only the sealed file is at rest
    save_review(db, "call-a", 4, "언제 도착하나요?", reviewer="qa1")

    result = dataset.export_dataset(db, keyring, tmp_path / "ds", dev=0.0, test=0.0)
    assert result["segments"] == {"train": 2, "dev": 0, "test": 0}
    first = json.loads((tmp_path / "ds/train/call-a_0002.json").read_text())
    assert first["segments"] == [{"speaker": 0, "text": "배송 조회 부탁드려요", "start": 0.0,
                                  "end": first["audio_duration"]}]
    assert first["audio_path"] == "call-a_0002.wav" and first["customized_context"] == []
    # stream time 1.0 s + the fork's 0.6 s after recording start, padded
    assert first["call_start"] == pytest.approx(1.6 - dataset.PAD_S) and first["call_end"] == pytest.approx(2.8 + 0.15)
    second = json.loads((tmp_path / "ds/train/call-a_0004.json").read_text())
    assert second["segments"][0]["text"] == "언제 도착하나요?" and second["reviewed"] is True

    for name, level in (("call-a_0002", 3000), ("call-a_0004", 9000)):
        audio, rate = sf.read(str(tmp_path / f"ds/train/{name}.wav"), dtype="int16")
        assert rate == RATE and audio.ndim == 1
        pad = int(dataset.PAD_S * RATE)
        assert rms(audio[:pad - 80]) == 0 and rms(audio[-pad + 80:]) == 0  # the padding is the silence around
        assert rms(audio[pad + 80:-pad - 80]) == pytest.approx(level / np.sqrt(2), rel=0.02)  # its own speech
    lines = [json.loads(line) for line in (tmp_path / "ds/manifest.jsonl").read_text().splitlines()]
    assert {(m["call_id"], m["seq"], m["split"]) for m in lines} == {("call-a", 2, "train"), ("call-a", 4, "train")}


def test_personal_data_masked_and_silenced_or_dropped(db, store, keyring, tmp_path: Path) -> None:  # noqa: ANN001
    said = [Said("주문 취소할게요", 1.0, 2.0), Said(CARD, 3.0, 6.0)]
    record_call(db, store, keyring, tmp_path / "rec", "call-p", said, offset_s=0.0)
    silenced = dataset.export_dataset(db, keyring, tmp_path / "s", pii="silence", dev=0.0, test=0.0)
    assert silenced["segments"]["train"] == 2
    sample = json.loads((tmp_path / "s/train/call-p_0004.json").read_text())
    assert sample["segments"][0]["text"] == CARD_MASKED
    assert "4111" not in (tmp_path / "s/manifest.jsonl").read_text()
    (a, b), = sample["silenced"]
    audio, _ = sf.read(str(tmp_path / "s/train/call-p_0004.wav"), dtype="int16")
    assert a < 0.5 and 2.0 < b < 2.8  # the number is said in the first two thirds
    assert rms(audio[int(a * RATE):int(b * RATE)]) == 0
    assert rms(audio[int((b + 0.1) * RATE):int((b + 0.3) * RATE)]) > 1000  # "확인해 주세요" is still heard

    dropped = dataset.export_dataset(db, keyring, tmp_path / "d", pii="drop", dev=0.0, test=0.0)
    assert dropped["segments"]["train"] == 1 and dropped["dropped_reasons"] == ["personal data"]
    assert not (tmp_path / "d/train/call-p_0004.wav").exists()


def test_recording_masked_span_drops_the_turn(db, store, keyring, tmp_path: Path) -> None:  # noqa: ANN001
    said = [Said("비밀번호 누를게요", 1.0, 2.0), Said("1234", 3.0, 4.0), Said("됐나요", 5.0, 6.0)]
    rec = record_call(db, store, keyring, tmp_path / "rec", "call-m", said, offset_s=0.0, masked=[(2.8, 4.3)])
    assert rec.masked_spans == ((2.8, 4.3),)
    result = dataset.export_dataset(db, keyring, tmp_path / "ds", dev=0.0, test=0.0)
    names = sorted(p.stem for p in (tmp_path / "ds/train").glob("*.json"))
    assert names == ["call-m_0002", "call-m_0006"]
    assert result["dropped_reasons"] == ["recording masked (keypad or card entry): audio and text disagree"]


def test_split_keeps_every_segment_of_a_call_together(db, store, keyring, tmp_path: Path) -> None:  # noqa: ANN001
    ids = [f"call-{i}" for i in range(12)]
    for cid in ids:
        record_call(db, store, keyring, tmp_path / "rec", cid, [Said("네", 0.5, 1.0), Said("아니요", 2.0, 2.6)])
    dataset.export_dataset(db, keyring, tmp_path / "ds", dev=0.3, test=0.3)
    where: dict[str, set[str]] = {}
    for m in map(json.loads, (tmp_path / "ds/manifest.jsonl").read_text().splitlines()):
        where.setdefault(m["call_id"], set()).add(m["split"])
    assert set(where) == set(ids)
    assert all(splits == {dataset.split_of(c, 0.3, 0.3)} for c, splits in where.items())
    assert len({s for v in where.values() for s in v}) == 3  # this set reaches all three splits


def test_review_needs_a_caller_turn_and_is_masked(db, store, keyring, tmp_path: Path) -> None:  # noqa: ANN001
    record_call(db, store, keyring, tmp_path / "rec", "call-r", [Said("여보세요", 0.5, 1.0)])
    with pytest.raises(ReviewError, match="agent"):
        save_review(db, "call-r", 1, "고침")
    with pytest.raises(ReviewError, match="no turn 9"):
        save_review(db, "call-r", 9, "고침")
    assert save_review(db, "call-r", 2, CARD) == CARD_MASKED
    with db.connection() as conn:
        conn.execute("DELETE FROM calls WHERE call_id = 'call-r'")  # purge and forget delete the call
        assert conn.execute("SELECT count(*) AS n FROM transcript_reviews").fetchone()["n"] == 0


def test_a_recording_that_does_not_open_is_reported_and_the_rest_exported(db, store, keyring,  # noqa: ANN001
                                                                          tmp_path: Path) -> None:
    record_call(db, store, keyring, tmp_path / "rec", "call-ok", [Said("네", 0.5, 1.2)])
    gone = record_call(db, store, keyring, tmp_path / "rec", "call-gone", [Said("아니요", 0.5, 1.2)])
    gone.path.unlink()
    other_key = record_call(db, store, Keyring.of(bytes(32)), tmp_path / "rec", "call-oldkey", [Said("네", 0.5, 1.2)])
    assert other_key.key_id != keyring.sealing_key()[0]
    result = dataset.export_dataset(db, keyring, tmp_path / "ds", dev=0.0, test=0.0)
    assert result["segments"]["train"] == 1 and result["dropped"] == 2
    reasons = " ".join(result["dropped_reasons"])
    assert "call-gone" in reasons and "recording does not open" in reasons
