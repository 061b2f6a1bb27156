"""The shipped systemd units start with the shipped configs: state under /var/lib/callagent, the spool
FreeSWITCH reads in group freeswitch, descriptor limits, restart limits where systemd reads them, two
controller instances that drain on SIGTERM; `systemd-analyze verify` where it is installed."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
STATE = Path("/var/lib/callagent")
PREFIX = "/opt/callagent"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def test_units_exist_and_the_controller_is_a_template():
    names = {p.name for p in UNITS}
    assert {"callagent-controller@.service", "callagent-asr-worker.service", "callagent-tts-worker.service"} <= names
    assert "callagent-controller.service" not in names


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_limits_where_systemd_reads_them(path: Path):
    u = unit(path)
    assert "StartLimitIntervalSec" in u["Unit"] and "StartLimitBurst" in u["Unit"]
    assert "StartLimitIntervalSec" not in u["Service"] and "StartLimitBurst" not in u["Service"]
    assert int(u["Service"]["LimitNOFILE"]) >= 65536


def _instance_config(port: int):
    return load_config(ROOT / "systemd" / f"controller-{port}.yaml")


def test_two_controller_instances_listen_on_the_dialplans_hosts_and_drain():
    u = unit(ROOT / "systemd" / "callagent-controller@.service")["Service"]
    assert u["Environment"] == "CALLAGENT_CONFIG=/etc/callagent/controller-%i.yaml"
    assert u["KillSignal"] == "SIGTERM"
    configs = {port: _instance_config(port) for port in (8084, 8085)}
    for port, cfg in configs.items():
        assert cfg.controller.listen == ("127.0.0.1", port)
        assert int(u["TimeoutStopSec"]) >= cfg.controller.drain_timeout_s + 15
    # Same everything else: the two files may not drift apart.
    texts = {p: (ROOT / "systemd" / f"controller-{p}.yaml").read_text(encoding="utf-8") for p in configs}
    diff = [(a, b) for a, b in zip(texts[8084].splitlines(), texts[8085].splitlines(), strict=True) if a != b]
    assert all(a.lstrip().startswith(("#", "listen:", "metrics_listen:")) for a, _ in diff), diff
    a, b = configs[8084].controller, configs[8085].controller
    assert a.metrics_listen != b.metrics_listen
    assert set(a.status_urls) == set(b.status_urls) == {f"http://{h}:{p}" for h, p in (a.metrics_listen,
                                                                                        b.metrics_listen)}
    dialplan = (ROOT / "dialplan/public/00_callagent.xml").read_text(encoding="utf-8")
    assert "127.0.0.1:8084|127.0.0.1:8085 async full" in dialplan


def _written_paths(cfg) -> list[Path]:
    paths = [cfg.tts.spool_dir, cfg.tts.cache_dir, cfg.store.spool_dir, cfg.store.embedded_dir]
    if cfg.controller.recording_dir:
        paths.append(cfg.controller.recording_dir)
    return [cfg.path(p) for p in paths]


@pytest.mark.parametrize("config", ["callagent.yaml", "controller-8084.yaml", "controller-8085.yaml"])
def test_every_path_a_service_writes_is_in_its_state_directory(config: str):
    """Installed as /etc/callagent/<file>: relative paths would land in /etc (read-only under the sandbox)."""
    cfg = load_config(ROOT / "systemd" / config)
    for path in _written_paths(cfg):
        assert path.is_absolute() and STATE in path.parents, path
    if config == "callagent.yaml":
        assert cfg.path(cfg.worker.hotwords_dir) == Path(PREFIX) / "hotwords"
        assert (ROOT / "hotwords").is_dir()      # what the install copies there


def _install_dirs(service: configparser.SectionProxy) -> dict[str, tuple[str, str]]:
    """ExecStartPre `install -d -o U -g G -m MODE dirs…` → {dir: (group, mode)}."""
    out: dict[str, tuple[str, str]] = {}
    for line in service.get("ExecStartPre", "").splitlines() if "ExecStartPre" in service else []:
        words = line.lstrip("+").split()
        if words and words[0].endswith("/install") and "-d" in words:
            group, mode = words[words.index("-g") + 1], words[words.index("-m") + 1]
            out.update({w: (group, mode) for w in words if w.startswith("/var/")})
    return out


def test_freeswitch_can_read_the_spool_and_write_recordings_but_not_the_private_state():
    raw = (ROOT / "systemd" / "callagent-controller@.service").read_text(encoding="utf-8")
    service = unit(ROOT / "systemd" / "callagent-controller@.service")["Service"]
    # configparser keeps the last of repeated keys; read every ExecStartPre line from the text.
    pre = "\n".join(line.split("=", 1)[1] for line in raw.splitlines() if line.startswith("ExecStartPre="))
    dirs = _install_dirs({"ExecStartPre": pre})  # type: ignore[arg-type]
    cfg = _instance_config(8084)
    for key in (cfg.tts.spool_dir, cfg.tts.cache_dir):
        group, mode = dirs[key]
        assert group == "freeswitch" and int(mode, 8) & 0o2050 == 0o2050    # setgid, group r-x
    group, mode = dirs[cfg.controller.recording_dir]
    assert group == "freeswitch" and int(mode, 8) & 0o2070 == 0o2070        # FreeSWITCH writes recordings
    assert "freeswitch" in service["SupplementaryGroups"].split() and service["UMask"] == "0027"
    assert service["StateDirectory"].split()[0] == "callagent" and service["ProtectSystem"] == "strict"
    assert STATE / "state" in Path(cfg.store.spool_dir).parents and str(STATE / "state") not in dirs
    tts = unit(ROOT / "systemd" / "callagent-tts-worker.service")["Service"]
    assert dirs.keys() >= _install_dirs(tts).keys() and "freeswitch" in tts["SupplementaryGroups"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_is_clean(tmp_path: Path):
    """The units as shipped, with only the install prefix moved to a temp folder holding stand-in programs
    (verify checks that ExecStart exists and is executable)."""
    prefix = tmp_path / "opt" / "callagent"
    files = []
    for path in UNITS:
        text = path.read_text(encoding="utf-8").replace(PREFIX, str(prefix))
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                exe = Path(line.split("=", 1)[1].lstrip("+-@!:").split()[0])
                if str(exe).startswith(str(prefix)):
                    exe.parent.mkdir(parents=True, exist_ok=True)
                    exe.write_text("#!/bin/sh\n")
                    exe.chmod(0o755)
        name = path.name.replace("@.service", "@8084.service")   # verify needs an instance
        (tmp_path / name).write_text(text, encoding="utf-8")
        files.append(str(tmp_path / name))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *files], capture_output=True, text=True,
                          timeout=120, check=False)
    out = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 and out == "", out
