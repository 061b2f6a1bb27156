"""`bench turns` scoring: where hesitations go, and which final counts as taking a hesitation or the true end."""

from __future__ import annotations

import numpy as np

from agent.ops.bench import turns


def test_boundaries_spread_over_the_interior_words():
    words = [(0.5 + 0.4 * i, 0.9 + 0.4 * i) for i in range(12)]  # 0.5 .. 5.3 s
    cuts = turns.boundaries(words, 3)
    assert len(cuts) == 3 and cuts == sorted(cuts)
    assert all(words[0][0] + turns.EDGE_S <= t <= words[-1][1] - turns.EDGE_S for t in cuts)
    assert turns.boundaries(words[:2]) == []


def final(start: float, end: float, reason: str) -> dict:
    eot = {"reason": reason, "silence_ms": 240 if reason == "sentence_end" else 900, "sentence_end": None,
           "smart_turn": None}
    return {"type": "transcription", "data": {"final": True, "start": start, "end": end, "text": "x", "eot": eot}}


def test_a_final_ending_at_a_hesitation_took_it_and_the_last_final_is_the_true_end():
    stream = turns.TurnStream("a.flac", turns.CONDITIONS[0], 500, 16000, np.zeros(1, np.int16), [2.0, 4.0], 6.0)
    messages = [final(0.4, 1.95, "sentence_end"), final(2.5, 5.98, "silence")]
    scored = turns.score_stream(stream, messages)
    assert scored["hesitations_taken"] == ["sentence_end", None]
    assert scored["end"]["reason"] == "silence" and scored["other_splits"] == 0
    summary = turns.summarise([scored])["all"]
    assert summary["hesitations"]["500"] == {"n": 2, "taken_share": 0.5}
    assert summary["hesitations_500_plus_taken_share"] == 0.5 and summary["slow_path_share"] == 1.0


def test_a_split_elsewhere_is_counted_and_a_missing_end_is_missed():
    stream = turns.TurnStream("a.flac", turns.CONDITIONS[1], 800, 8000, np.zeros(1, np.int16), [3.0], 6.0)
    scored = turns.score_stream(stream, [final(0.4, 1.0, "sentence_end"), final(1.5, 3.6, "silence")])
    assert scored["hesitations_taken"] == [None] and scored["end"] is None and scored["other_splits"] == 2
    assert turns.summarise([scored])["all"]["missed_ends"] == 1
