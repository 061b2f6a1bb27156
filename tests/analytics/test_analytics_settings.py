"""The analytics: and dashboard: blocks of callagent.yaml: defaults, and a bad value names its key."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, parse_config
from agent.ops import cli


def test_prices_and_dashboard_keys_are_validated():
    from agent.analytics.settings import parse_analytics, parse_dashboard

    cfg = parse_config({"analytics": {"prices": {"gpu_per_hour": 3600, "asr_per_minute": {"clova": 12.5}}},
                        "dashboard": {"listen": "0.0.0.0:9000"}})
    a = parse_analytics(cfg.analytics)
    assert a.prices.gpu_per_hour == 3600.0 and a.prices.asr_per_minute == {"clova": 12.5}
    assert a.timezone == "Asia/Seoul" and parse_dashboard(cfg.dashboard).listen == ("0.0.0.0", 9000)
    negative = {"analytics": {"prices": {"asr_per_minute": {"clova": -1}}}}
    for raw, key in ((negative, "analytics.prices.asr_per_minute.clova"),
                     ({"analytics": {"timezone": "Mars/Olympus"}}, "analytics.timezone"),
                     ({"analytics": {"prices": {"gpu_per_hr": 1}}}, "analytics.prices.gpu_per_hr"),
                     ({"dashboard": {"listen": "nowhere"}}, "dashboard.listen")):
        with pytest.raises(ConfigError) as err:
            parse_config(raw)
        assert err.value.key == key


def test_the_dashboard_refuses_a_public_address_without_a_token(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLAGENT_CONFIG", raising=False)
    monkeypatch.delenv("CALLAGENT_DASHBOARD_TOKEN", raising=False)
    monkeypatch.setattr(cli, "_db", lambda cfg, migrate=True: None)  # refused before any database use
    assert cli.main(["dashboard", "--listen", "0.0.0.0:0"]) == 2
    assert "CALLAGENT_DASHBOARD_TOKEN" in capsys.readouterr().err
