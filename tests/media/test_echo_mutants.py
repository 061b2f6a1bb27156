"""Echo gate edges on synthetic signals: the delay window's ends, the reference floor, an echo louder than its
source, the level measure, and how the gate is set up (frame size, custom window and threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.media.echo import EchoGate, dbfs

N = 320  # 20 ms at 16 kHz


def noise(seconds: float, sd: float = 3000.0, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, sd, int(16000 * seconds))


def delayed(ref: np.ndarray, delay_ms: int, gain: float) -> np.ndarray:
    d = delay_ms * 16
    out = np.zeros_like(ref)
    out[d:] = ref[:ref.size - d] * gain
    return out


def verdicts(ref: np.ndarray, caller: np.ndarray, gate: EchoGate | None = None, rate: int = 16000) -> list[bool]:
    """The gate's verdict on each caller frame after the first 300 ms (the reference history is full)."""
    gate = gate or EchoGate(rate)
    n = rate // 50
    out = []
    for i in range(0, min(ref.size, caller.size) - n + 1, n):
        gate.push_reference(np.clip(ref[i:i + n], -32768, 32767).astype("<i2").tobytes())
        echo = gate.is_echo(np.clip(caller[i:i + n], -32768, 32767).astype("<i2").tobytes())
        if i >= rate * 3 // 10:
            out.append(echo)
    return out


def test_the_level_of_a_frame_in_dbfs():
    assert dbfs(np.full(N, 16384, np.int16)) == pytest.approx(-6.0206, abs=1e-3)
    assert dbfs(np.full(N, -32768, np.int16)) == pytest.approx(0.0, abs=1e-9)
    assert dbfs(np.array([3, -4], np.int16)) == pytest.approx(20 * np.log10(np.sqrt(12.5) / 32768))
    assert dbfs(np.zeros(N, np.int16)) == float("-inf") and dbfs(np.zeros(0, np.int16)) == float("-inf")


@pytest.mark.parametrize("delay_ms", [20, 250])
def test_echo_at_either_end_of_the_delay_window_is_gated(delay_ms):
    ref = noise(1.0)
    assert all(verdicts(ref, delayed(ref, delay_ms, 0.5)))


def test_echo_just_outside_the_window_is_not_gated():
    ref = noise(1.0)
    assert not any(verdicts(ref, delayed(ref, 290, 0.5)))
    assert not any(verdicts(ref, delayed(ref, 0, 0.5)))  # no delay: not the line's echo either


def test_a_narrower_window_leaves_what_it_does_not_cover():
    ref = noise(1.0)
    narrow = EchoGate(16000, min_delay_ms=20, max_delay_ms=100)
    assert not any(verdicts(ref, delayed(ref, 200, 0.5), narrow))
    assert all(verdicts(ref, delayed(ref, 80, 0.5), EchoGate(16000, min_delay_ms=20, max_delay_ms=100)))
    late = EchoGate(16000, min_delay_ms=100, max_delay_ms=250)
    assert not any(verdicts(ref, delayed(ref, 40, 0.5), late))


def test_echo_of_a_reference_under_the_floor_is_not_gated():
    ref = noise(1.0, sd=2.0)  # about −84 dBFS: the agent is silent, this is line noise
    assert not any(verdicts(ref, delayed(ref, 100, 1.0)))
    assert all(verdicts(ref, delayed(ref, 100, 1.0), EchoGate(16000, ref_floor_dbfs=-100.0)))


def test_a_caller_louder_than_the_reference_is_not_echo():
    ref = noise(1.0)
    assert all(verdicts(ref, delayed(ref, 100, 1.3)))  # +2.3 dB: within the level difference allowed
    assert not any(verdicts(ref, delayed(ref, 100, 2.0)))  # +6 dB: echo is never louder than its source


def test_the_threshold_decides_and_the_last_score_is_kept():
    ref = noise(1.0)
    caller = delayed(ref, 100, 0.5) + noise(1.0, sd=1500.0, seed=7)  # echo under line noise: corr ≈ 0.7
    gate = EchoGate(16000)
    scores = []
    for i in range(0, ref.size - N + 1, N):
        gate.push_reference(ref[i:i + N].astype("<i2").tobytes())
        gate.is_echo(caller[i:i + N].clip(-32768, 32767).astype("<i2").tobytes())
        scores.append(gate.last_score)
    mid = float(np.median(scores[15:]))
    assert 0.5 < mid < 0.95
    low = EchoGate(16000, threshold=mid - 0.1)
    high = EchoGate(16000, threshold=mid + 0.1)
    assert sum(verdicts(ref, caller, low)) > 0.8 * 35 and sum(verdicts(ref, caller, high)) < 0.2 * 35


def test_a_silent_caller_frame_is_never_echo():
    gate = EchoGate(16000)
    ref = noise(0.4)
    for i in range(0, ref.size, N):
        gate.push_reference(ref[i:i + N].astype("<i2").tobytes())
    assert not gate.is_echo(bytes(2 * N)) and gate.last_score == 0.0
    assert gate.score(bytes(2 * N)) == 0.0


def test_the_score_is_at_most_one():
    ref = noise(1.0)
    gate = EchoGate(16000)
    caller = delayed(ref, 100, 1.0)
    for i in range(0, ref.size - N + 1, N):
        gate.push_reference(ref[i:i + N].astype("<i2").tobytes())
        assert 0.0 <= gate.score(caller[i:i + N].astype("<i2").tobytes()) <= 1.0


def test_at_8k_and_with_40_ms_frames_the_gate_works_on_its_own_frame_size():
    ref8 = noise(1.0)[::2].copy()
    assert all(verdicts(ref8, delayed(ref8, 60, 0.5) [:ref8.size], EchoGate(8000), rate=8000))
    gate = EchoGate(16000, frame_ms=40)
    gate.push_reference(bytes(2 * 640))
    with pytest.raises(ValueError, match="^reference frame must be 640 samples, got 320$"):
        gate.push_reference(bytes(2 * 320))


def test_the_level_of_a_single_sample_and_of_a_whisper():
    assert dbfs(np.array([16384], np.int16)) == pytest.approx(-6.0206, abs=1e-3)
    assert dbfs(np.array([1, 0], np.int16)) == pytest.approx(20 * np.log10(np.sqrt(0.5) / 32768))  # rms < 1


def _sine(amplitude: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return np.round(amplitude * np.sin(2 * np.pi * 440 * t))


def test_the_reference_floor_is_minus_80_dbfs():
    # A faint agent (−78 dBFS) still echoes; below the floor (−80 dBFS, −82 here) the reference is taken as silent.
    assert all(verdicts(_sine(6.0), delayed(_sine(6.0), 100, 1.0)))
    assert not any(verdicts(_sine(4.0), delayed(_sine(4.0), 100, 1.0)))


def test_a_fresh_gate_reports_no_correlation_yet():
    assert EchoGate(16000).last_score == 0.0


def test_the_faint_echo_of_a_click_is_echo():
    ref = np.zeros(16000)
    ref[8000] = 10000.0  # one loud click from the agent
    caller = np.zeros(16000)
    caller[8000 + 100 * 16] = 1.0  # it comes back 100 ms later, 80 dB down: one sample of 1
    gate = EchoGate(16000)
    verdict = []
    for i in range(0, 16000, N):
        gate.push_reference(ref[i:i + N].astype("<i2").tobytes())
        frame = caller[i:i + N].astype("<i2").tobytes()
        if caller[i:i + N].any():
            verdict.append(gate.is_echo(frame))
    assert verdict == [True]
