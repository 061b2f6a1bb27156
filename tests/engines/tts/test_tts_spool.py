"""Playback spool: WAV at the call's rate, atomic appearance, safe names, and clear directory errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.engines.errors import EngineError
from agent.engines.tts.base import AudioChunk
from agent.engines.tts.spool import Spool, SpoolError


def _tone(seconds: float, rate: int = 22050, hz: float = 300.0) -> AudioChunk:
    t = np.arange(int(seconds * rate)) / rate
    return AudioChunk(pcm=(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), sample_rate=rate)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000])
def test_wav_is_16bit_mono_at_the_call_rate_with_duration_kept(tmp_path: Path, rate: int) -> None:
    chunk = _tone(1.37)
    path = Spool(tmp_path).write("call-1", "u1-000", chunk, rate)
    assert path == tmp_path / "call-1" / "u1-000.wav"
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (rate, 1, "PCM_16", "WAV")
    assert info.duration == pytest.approx(chunk.duration_s, rel=0.01)
    audio, _ = sf.read(str(path), dtype="int16")
    # Still the same tone after resampling: energy sits at 300 Hz.
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    assert np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)] == pytest.approx(300, abs=2)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # FreeSWITCH's user must read it


def test_files_appear_atomically_through_a_temp_file_and_rename(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    renames: list[tuple[Path, Path, bool, int]] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str) -> None:
        renames.append((Path(src), Path(dst), Path(dst).exists(), Path(src).stat().st_size))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    path = spool.write("call-1", "u7-003", _tone(0.5), 8000)
    [(src, dst, dst_existed, size)] = renames
    assert dst == path and not dst_existed
    assert src.parent == path.parent and src.name.startswith(".") and src.suffix == ".part"
    assert size == 44 + 2 * 4000  # complete before it got its playable name
    assert sorted(p.name for p in path.parent.iterdir()) == ["u7-003.wav"]


def test_missing_root_is_created_even_if_removed_while_running(tmp_path: Path) -> None:
    root = tmp_path / "var" / "spool"
    spool = Spool(root)
    assert spool.write("c1", "a", _tone(0.1), 8000).is_file()
    spool.cleanup("c1")
    root.rmdir()
    assert spool.write("c1", "b", _tone(0.1), 8000) == root / "c1" / "b.wav"


def test_unwritable_root_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    spool = Spool(blocker / "spool")
    with pytest.raises(SpoolError, match="cannot create the spool directory") as err:
        spool.write("c1", "a", _tone(0.1), 8000)
    assert isinstance(err.value, EngineError)  # the call falls back like on any TTS failure
    assert err.value.path == blocker / "spool"
    with pytest.raises(SpoolError):
        spool.check()


def test_check_passes_on_a_writable_root(tmp_path: Path) -> None:
    Spool(tmp_path / "new").check()
    assert list((tmp_path / "new").iterdir()) == []  # the probe file is gone


def test_root_with_characters_freeswitch_cannot_take_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="characters FreeSWITCH cannot take"):
        Spool(tmp_path / "my spool")


@pytest.mark.parametrize("name", ["a b", "{x}", "../x", "x,y", "'q'", ".hidden", "", "a/b"])
def test_unsafe_file_names_are_rejected(tmp_path: Path, name: str) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(ValueError, match="not a safe file name"):
        spool.write("c1", name, _tone(0.1), 8000)
    with pytest.raises(ValueError, match="call_id"):
        spool.write(name, "ok", _tone(0.1), 8000)


@pytest.mark.parametrize("rate", [0, 7999, 96000, 8000.0, True])
def test_bad_rates_are_rejected(tmp_path: Path, rate: object) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        Spool(tmp_path).write("c1", "a", _tone(0.1), rate)  # type: ignore[arg-type]


def test_non_int16_audio_is_rejected(tmp_path: Path) -> None:
    chunk = AudioChunk(pcm=np.zeros(800, dtype=np.float32), sample_rate=8000)
    with pytest.raises(ValueError, match="int16"):
        Spool(tmp_path).write("c1", "a", chunk, 16000)


def test_cleanup_removes_only_that_call(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write("c1", "a", _tone(0.1), 8000)
    spool.write("c2", "a", _tone(0.1), 8000)
    spool.cleanup("c1")
    spool.cleanup("c1")  # twice is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c2"]
