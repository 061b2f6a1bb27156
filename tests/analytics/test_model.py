"""Post-call analytics from calls stored in PostgreSQL: each §3-3 figure, the quality formula and the cost."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.analytics.settings import AnalyticsSettings, Prices
from agent.analytics.store import analyze_call
from agent.dialog import sentiment
from tests.analytics.seed import T0, caller, greeting, insert_call, reply

S = timedelta(seconds=1)


def _good_call(db, call_id: str = "c-good", **kw) -> None:
    g = greeting(T0)
    g.update(ended_at=T0 + 3 * S, first_audio_ms=0.0)
    insert_call(db, call_id, T0, [
        g,
        caller(1, T0 + 5 * S, "주문한 상품 배송 조회하고 싶어요", 5.0, 7.0, **kw),
        reply(2, T0 + 8 * S, "배송 중입니다.", played_s=4.0, first_audio_ms=300.0, usage=(1000, 50),
              tools=[{"name": "verify_identity", "ok": True}, {"name": "lookup_order", "ok": True}]),
        caller(3, T0 + 15 * S, "너무 짜증나요 아직도 안 와요", 15.0, 18.0, **kw),
        reply(4, T0 + 19 * S, "죄송합니다.", played_s=6.0, first_audio_ms=1500.0, usage=(1200, 80)),
        caller(5, T0 + 30 * S, "감사합니다", 30.0, 31.0, **kw),
        reply(6, T0 + 32 * S, "감사합니다. 좋은 하루 되세요.", played_s=2.0, first_audio_ms=300.0),
    ], duration_s=60.0, end_reason="agent_hangup")


def _row(db, call_id: str) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM call_analytics WHERE call_id = %s", (call_id,)).fetchone()


def test_a_finished_call_yields_every_figure_and_stores_it(db):
    _good_call(db)
    a = analyze_call(db, "c-good", AnalyticsSettings(), tts_engine="espeak")
    row = _row(db, "c-good")
    assert row is not None and row["quality_score"] == pytest.approx(a.quality_score)
    assert row["duration_s"] == pytest.approx(60.0)
    # speech: caller 2 + 3 + 1 s from the worker's utterance times; agent 3 + 4 + 6 + 2 s of playback
    assert row["caller_speech_s"] == pytest.approx(6.0) and row["agent_speech_s"] == pytest.approx(15.0)
    assert row["caller_share"] == pytest.approx(6 / 21, abs=1e-4)
    # caller speech end → agent audio = end-of-speech wait 800 + ASR wait 40 + transcript → playback
    assert row["gaps_ms"] == [1140.0, 2340.0, 1140.0]
    assert row["gap_p50_ms"] == 1140.0 and row["gap_max_ms"] == 2340.0 and row["gaps_over_limit"] == 1
    said = ("주문한 상품 배송 조회하고 싶어요", "너무 짜증나요 아직도 안 와요", "감사합니다")
    expected = [sentiment.score(t) for t in said]
    assert [s["score"] for s in row["sentiment"]] == pytest.approx(expected, abs=1e-3)
    assert expected[1] < 0 < expected[2] and row["sentiment_trend"] == "improving"
    assert "delivery" in row["intents"] and row["tools"] == ["verify_identity", "lookup_order"]
    assert row["resolution"] == "resolved"
    assert row["compliance"] == {"ai_disclosure": True, "recording_notice": True,
                                 "identity_before_account_tool": True, "no_secret_asked": True, "pii_masked": True}
    # 100 × (0.30·resolved + 0.25·(2 of 3 gaps ≤ 2 s) + 0.20·compliance + 0.15·(end sentiment + 1)/2 + 0.10·flow)
    end = (expected[1] + expected[2]) / 2
    assert row["quality_score"] == pytest.approx(
        round(100 * (0.30 + 0.25 * 2 / 3 + 0.20 + 0.15 * (end + 1) / 2 + 0.10), 1))
    # cost: 2200 prompt + 130 completion tokens, 1 minute of line; Vosk and espeak cost nothing per minute
    assert (row["llm_prompt_tokens"], row["llm_completion_tokens"]) == (2200, 130)
    assert row["cost"]["llm_krw"] == pytest.approx(round(2.2 * 0.7 + 0.13 * 2.8, 2))
    assert row["cost_krw"] == pytest.approx(round(2.2 * 0.7 + 0.13 * 2.8, 2) + 20.0, abs=0.011)
    assert row["asr_engine"] == "vosk" and row["asr_seconds"] == pytest.approx(6.0) and row["gpu_seconds"] == 0


def test_gpu_engines_cost_gpu_seconds_and_configured_prices(db):
    _good_call(db, "c-gpu", engine="vibevoice-vllm", asr_ms=400.0)
    settings = AnalyticsSettings(prices=Prices(gpu_per_hour=3600.0, telephony_per_minute=0.0,
                                               llm_prompt_per_1k_tokens=0.0, llm_completion_per_1k_tokens=0.0,
                                               tts_per_minute={"vibevoice-realtime": 6.0}), tts_gpu_rtf=0.5)
    a = analyze_call(db, "c-gpu", settings, tts_engine="vibevoice-realtime")
    # ASR 3 × 0.4 s on the GPU + 15 s of speech × 0.5 RTF; at ₩3,600/h a GPU-second is ₩1
    assert a.cost.gpu_seconds == pytest.approx(1.2 + 7.5)
    assert a.cost.gpu_krw == pytest.approx(8.7) and a.cost.tts_krw == pytest.approx(15 / 60 * 6.0)
    assert a.cost.total_krw == pytest.approx(8.7 + 1.5)


def test_transfer_with_compliance_failures(db):
    g = greeting(T0, interrupted=True)
    insert_call(db, "c-bad", T0, [
        g,
        caller(1, T0 + 5 * S, "카드 번호는 4111 1111 1111 1111 이에요", 5.0, 9.0),
        reply(2, T0 + 10 * S, "비밀번호를 말씀해 주세요.", played_s=2.0,
              tools=[{"name": "lookup_account", "ok": True}]),
    ], end_reason="transferred", escalation_reason="sensitive_topic")
    a = analyze_call(db, "c-bad")
    assert (a.resolution, a.resolution_reason) == ("transferred", "sensitive_topic")
    assert a.compliance == {"ai_disclosure": False, "recording_notice": False,
                            "identity_before_account_tool": False, "no_secret_asked": False, "pii_masked": False}
    assert a.compliance_ok is False
    assert a.quality_parts["compliance"] == 0.0 and a.quality_parts["resolution"] == 0.5


@pytest.mark.parametrize(("turns", "end_reason", "expected"), [
    ([caller(1, T0, "여보세요 주문 취소요", 1.0, 3.0)], "caller_hangup", ("abandoned", "hung_up_before_reply")),
    ([caller(1, T0, "주문 조회요", 1.0, 3.0), reply(2, T0, "네.", played_s=1.0),
      caller(3, T0, "배송은 언제 와요", 5.0, 7.0)], "caller_hangup", ("abandoned", "hung_up_waiting")),
    ([caller(1, T0, "주문 조회요", 1.0, 3.0), reply(2, T0, "네.", played_s=1.0),
      caller(3, T0, "감사합니다", 5.0, 7.0)], "caller_hangup", ("resolved", "caller_hangup")),
    ([caller(1, T0, "내일 다시 전화 주세요", 1.0, 3.0),
      reply(2, T0, "내일 연락드리겠습니다.", played_s=1.0, tools=[{"name": "schedule_callback", "ok": True}])],
     "agent_hangup", ("callback", "callback_scheduled")),
    ([], "failed", ("failed", "failed")),
])
def test_resolution(db, turns, end_reason, expected):
    insert_call(db, "c-res", T0, turns, end_reason=end_reason)
    a = analyze_call(db, "c-res")
    assert (a.resolution, a.resolution_reason) == expected


def test_a_live_call_is_not_analysed(db):
    insert_call(db, "c-live", T0, [caller(1, T0, "안녕하세요", 1.0, 2.0)], duration_s=None)
    assert analyze_call(db, "c-live") is None
    assert _row(db, "c-live") is None


def test_worsening_sentiment_and_unknown_greeting(db):
    insert_call(db, "c-worse", T0, [
        caller(1, T0, "감사합니다 친절하시네요", 1.0, 2.0), reply(2, T0, "네.", played_s=1.0),
        caller(3, T0, "아직도 안 와요", 3.0, 4.0), reply(4, T0, "확인하겠습니다.", played_s=1.0),
        caller(5, T0, "진짜 최악이네요 열받아요", 5.0, 6.0), reply(6, T0, "죄송합니다.", played_s=1.0),
    ])
    a = analyze_call(db, "c-worse")
    assert a.sentiment_trend == "worsening" and a.sentiment_slope < 0
    # No greeting turn stored: disclosure and notice are unknown (None), not passed, and not counted.
    assert a.compliance["ai_disclosure"] is None and a.compliance_ok is True
