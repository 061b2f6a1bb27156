"""No silent skips in CI: with CI=true and ../shared/speech present, a test that skips for want of the recordings
fails; without CI it stays a skip that says why, and skips for other reasons are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "speech"

PROBE = f'''
import pytest

def test_wants_recordings():
    pytest.skip("speech recordings not found at {SPEECH}")

def test_wants_a_browser():
    pytest.skip("chromium is not installed")

@pytest.mark.xfail(reason="speech recordings not found at {SPEECH}", strict=False)
def test_expected_to_fail():
    raise AssertionError
'''


def _outcomes(tmp_path: Path, ci: str | None) -> dict[str, str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO)])
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "conftest", "-q",
                    f"--basetemp={tmp_path / 'bt'}", "--rootdir", str(tmp_path), "-c", os.devnull,
                    f"--junitxml={report}", str(tmp_path / "test_probe.py")],
                   cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child.tag if child.tag != "skipped" or child.get("type") != "pytest.xfail" else "xfail"
                 for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name")] = kinds[0] if kinds else "passed"
    return found


def test_outside_ci_a_missing_recording_is_a_skip(tmp_path: Path) -> None:
    assert _outcomes(tmp_path, None) == {"test_wants_recordings": "skipped", "test_wants_a_browser": "skipped",
                                         "test_expected_to_fail": "xfail"}


def test_in_ci_with_the_recordings_present_such_a_skip_fails(tmp_path: Path) -> None:
    if not SPEECH.is_dir():
        pytest.skip(f"needs the recordings at {SPEECH} (../shared/speech) to show the CI rule")
    assert _outcomes(tmp_path, "true") == {"test_wants_recordings": "failure", "test_wants_a_browser": "skipped",
                                           "test_expected_to_fail": "xfail"}
