"""Speaker: the first file is ready before later chunks are synthesized; files, texts and durations add up."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from agent.engines.errors import EngineError
from agent.engines.tts.base import AudioChunk
from agent.engines.tts.espeak import EspeakTts
from agent.engines.tts.fake import FakeTts
from agent.engines.tts.speaker import Speaker
from agent.engines.tts.spool import Spool

REPLY = (
    "네, 고객님. 주문하신 상품은 오늘 출고되었습니다. 내일 오후에 도착할 예정입니다. "
    "더 궁금하신 점 있으신가요?"
)


def _speaker(tmp_path: Path, engine: FakeTts, **kw: object) -> Speaker:
    return Speaker(engine, Spool(tmp_path), voice="ko", max_chunk_chars=60, **kw)  # type: ignore[arg-type]


def test_first_chunk_is_yielded_before_later_ones_are_synthesized(tmp_path: Path) -> None:
    engine = FakeTts(delay_s=0.15)
    started = time.perf_counter()
    seen: list[tuple[float, int]] = []
    for chunk in _speaker(tmp_path, engine).speak("call-1", "u1", REPLY, 8000):
        seen.append((time.perf_counter() - started, len(engine.calls)))
        assert chunk.path.is_file()
    assert [calls for _, calls in seen] == [1, 2, 3, 4]  # one synthesis per yield, never ahead
    assert seen[0][0] < 0.3 < 0.6 < seen[-1][0]
    assert engine.calls == [
        "네, 고객님.", "주문하신 상품은 오늘 출고되었습니다.", "내일 오후에 도착할 예정입니다.",
        "더 궁금하신 점 있으신가요?",
    ]


def test_files_names_texts_and_durations(tmp_path: Path) -> None:
    engine = FakeTts(ms_per_char=50)
    chunks = list(_speaker(tmp_path, engine).speak("call-1", "u9", REPLY, 16000))
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert [c.path.name for c in chunks] == ["u9-000.wav", "u9-001.wav", "u9-002.wav", "u9-003.wav"]
    assert " ".join(c.text for c in chunks) == REPLY
    for c in chunks:
        info = sf.info(str(c.path))
        assert info.samplerate == 16000 and info.channels == 1
        assert c.duration_s == pytest.approx(len(c.text) * 0.05, rel=0.01)
        assert info.duration == pytest.approx(c.duration_s, rel=0.01)
        assert c.synth_ms >= 0


def test_first_chunk_is_short(tmp_path: Path) -> None:
    text = "고객님께서 지난주에 주문하신 상품은 현재 물류센터에서 출고 준비 중입니다."
    chunks = list(_speaker(tmp_path, FakeTts(), first_chunk_chars=20).speak("c", "u", text, 8000))
    assert len(chunks[0].text) <= 20 and len(chunks) == 2
    assert " ".join(c.text for c in chunks) == text


def test_speak_stream_pulls_pieces_only_as_needed(tmp_path: Path) -> None:
    produced: list[str] = []

    def pieces() -> Iterator[str]:
        for p in ["첫 문장입니다.", "  ", "둘째 문장입니다."]:
            produced.append(p)
            yield p

    stream = _speaker(tmp_path, FakeTts()).speak_stream("c", "u", pieces(), 8000)
    first = next(stream)
    assert first.text == "첫 문장입니다." and produced == ["첫 문장입니다."]
    assert [c.text for c in stream] == ["둘째 문장입니다."]  # the blank piece made no file


def test_streaming_engine_audio_is_split_into_parts(tmp_path: Path) -> None:
    engine = FakeTts(ms_per_char=100, chunk_ms=200)  # audio arrives in 0.2 s engine chunks
    text = "주문하신 상품은 출고되었습니다"  # 16 characters: 1.6 s
    chunks = list(_speaker(tmp_path, engine, part_min_s=0.5).speak("c", "u", text, 8000))
    assert [round(c.duration_s, 2) for c in chunks] == [0.6, 0.6, 0.4]
    # Only the last part carries the text, so joining played texts gives what was heard in full.
    assert [c.text for c in chunks] == ["", "", text]
    assert sum(sf.info(str(c.path)).frames for c in chunks) == 1.6 * 8000


def test_stopping_the_iteration_stops_synthesis(tmp_path: Path) -> None:
    engine = FakeTts()
    stream = _speaker(tmp_path, engine).speak("c", "u", REPLY, 8000)
    next(stream)
    stream.close()  # barge-in
    assert len(engine.calls) == 1


def test_engine_failure_surfaces_after_the_chunks_already_spoken(tmp_path: Path) -> None:
    stream = _speaker(tmp_path, FakeTts(fail_on="내일")).speak("c", "u", REPLY, 8000)
    assert [next(stream).index, next(stream).index] == [0, 1]
    with pytest.raises(EngineError, match="configured to fail"):
        next(stream)


@pytest.mark.parametrize(("call_id", "utt_id", "rate"),
                         [("a b", "u", 8000), ("c", "{u}", 8000), ("c", "u", 44)])
def test_bad_input_is_rejected_at_call_time(tmp_path: Path, call_id: str, utt_id: str,
                                            rate: int) -> None:
    engine = FakeTts()
    with pytest.raises(ValueError):
        _speaker(tmp_path, engine).speak(call_id, utt_id, REPLY, rate)
    assert engine.calls == []


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_first_chunk_is_playable_quickly(tmp_path: Path) -> None:
    speaker = Speaker(EspeakTts(), Spool(tmp_path), voice="ko", max_chunk_chars=60)
    started = time.perf_counter()
    first = next(speaker.speak("call-1", "u1", REPLY, 8000))
    elapsed = time.perf_counter() - started
    assert sf.info(str(first.path)).samplerate == 8000
    assert 0.5 < first.duration_s < 4
    assert elapsed < 0.5  # typically ~10 ms; generous for loaded CI machines


def test_call_id_reaches_engines_that_take_it(tmp_path: Path) -> None:
    class PooledFake(FakeTts):
        def __init__(self) -> None:
            super().__init__()
            self.call_ids: list[str] = []

        def synthesize(self, text: str, voice: str, *, call_id: str = "") -> Iterator[AudioChunk]:
            self.call_ids.append(call_id)
            return super().synthesize(text, voice)

    engine = PooledFake()
    list(_speaker(tmp_path, engine).speak("call-7", "u", REPLY, 8000))
    assert engine.call_ids == ["call-7"] * 4


def test_engine_gets_the_spoken_form_and_the_record_keeps_the_written_one(tmp_path: Path) -> None:
    engine = FakeTts(ms_per_char=50)
    text = "결제 금액은 12,000원입니다. 3월 12일 오후 3시에 도착해요."
    chunks = list(_speaker(tmp_path, engine).speak("call-1", "u1", text, 8000))
    assert engine.calls == ["결제 금액은 만 이천 원입니다.", "삼월 십이일 오후 세 시에 도착해요."]
    assert [c.text for c in chunks] == ["결제 금액은 12,000원입니다.", "3월 12일 오후 3시에 도착해요."]
    assert [c.tts_text for c in chunks] == engine.calls
    # The audio is as long as what was said aloud, not as the digits.
    assert chunks[0].duration_s == pytest.approx(len(engine.calls[0]) * 0.05, rel=0.01)


def test_english_sentences_go_to_the_english_voice_unchanged(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    class Recording(FakeTts):
        def synthesize(self, text: str, voice: str) -> Iterator[AudioChunk]:  # type: ignore[override]
            seen.append((text, voice))
            return super().synthesize(text, voice)

    speaker = _speaker(tmp_path, Recording(), voices={"en": "en"})
    list(speaker.speak("call-1", "u1", "Your refund is 12,000 won.", 8000, language="en"))
    list(speaker.speak("call-1", "u2", "12,000원이에요.", 8000))
    assert seen == [("Your refund is 12,000 won.", "en"), ("만 이천 원이에요.", "ko")]


def test_espeak_speaks_english_with_its_english_voice_without_any_config(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make system-packages)")
    engine = EspeakTts()
    speaker = Speaker(engine, Spool(tmp_path), voice="ko", max_chunk_chars=60)
    assert speaker.voice_for("en") == "en" and speaker.voice_for("ko") == "ko"
    [en] = list(speaker.speak("c", "u1", "Thank you for calling.", 8000))
    [ko] = list(speaker.speak("c", "u2", "감사합니다.", 8000))
    assert en.tts_text == "Thank you for calling." and ko.tts_text == "감사합니다."
    assert en.duration_s > 0.5 and ko.duration_s > 0.3
