"""Echo gate: frames that are only the agent's audio coming back are gated; the caller's own voice over the
agent (double talk) is not. Synthetic signals and real Korean speech mixed as echo at −6/−12/−30 dB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.media.echo import EchoGate, dbfs, split_stereo

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech"
AGENT = SPEECH_DIR / "ko/zeroth/104_003_0193.flac"
CALLER = SPEECH_DIR / "ko/zeroth/104_003_0019.flac"
N = 320  # 20 ms at 16 kHz


def load(path: Path) -> np.ndarray:
    if not path.exists():
        pytest.skip(f"speech recordings not found at {SPEECH_DIR}")
    import soundfile as sf

    audio, rate = sf.read(path, dtype="int16")
    assert rate == 16000
    return audio.astype(np.float64)


def echo_of(ref: np.ndarray, delay_ms: int, gain_db: float) -> np.ndarray:
    d = delay_ms * 16
    out = np.zeros_like(ref)
    out[d:] = ref[:ref.size - d] * 10 ** (gain_db / 20)
    return out


def gated_share(ref: np.ndarray, caller: np.ndarray, *, loud_dbfs: float = -45.0) -> float:
    """Share of the caller's audible frames the gate calls echo."""
    gate, gated, audible = EchoGate(16000), 0, 0
    for i in range(0, min(ref.size, caller.size) - N + 1, N):
        gate.push_reference(np.clip(ref[i:i + N], -32768, 32767).astype("<i2").tobytes())
        frame = np.clip(caller[i:i + N], -32768, 32767).astype("<i2")
        if dbfs(frame) > loud_dbfs:
            audible += 1
            gated += gate.is_echo(frame.tobytes())
    return gated / audible


def test_split_stereo_takes_the_caller_from_the_left():
    pcm = np.array([[1, -1], [2, -2], [3, -3]], dtype="<i2")
    left, right = split_stereo(pcm.tobytes())
    assert np.frombuffer(left, "<i2").tolist() == [1, 2, 3] and np.frombuffer(right, "<i2").tolist() == [-1, -2, -3]


def test_synthetic_echo_is_gated_and_an_independent_signal_is_not():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 3000, 16000)
    assert gated_share(ref, echo_of(ref, 120, -12)) == 1.0
    assert gated_share(ref, rng.normal(0, 3000, 16000)) == 0.0
    # No reference (the agent is silent): nothing can be echo.
    assert gated_share(np.zeros(16000), echo_of(ref, 120, -12)) == 0.0


@pytest.mark.parametrize("gain_db", [-6, -12, -30])
@pytest.mark.parametrize("delay_ms", [20, 120, 250])
def test_real_speech_echo_is_gated_and_double_talk_passes(gain_db, delay_ms):
    agent, caller = load(AGENT), load(CALLER)
    n = min(agent.size, caller.size)
    agent, caller = agent[:n], caller[:n]
    echo = echo_of(agent, delay_ms, gain_db)
    assert gated_share(agent, echo) >= 0.98
    # The caller talking over the agent: most of their audible frames must reach the VAD.
    assert gated_share(agent, caller + echo) <= 0.35


def test_echo_outside_the_delay_window_is_not_gated():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 3000, 32000)
    assert gated_share(ref, echo_of(ref, 400, -6)) < 0.05
