"""The `analytics:` and `dashboard:` blocks of callagent.yaml: prices for the ₩ estimate, dashboard access.

Kept raw in Config (like `dialog:`) and validated here, so this package owns its keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config_reader import ConfigError, Section

GPU_ENGINES = ("vibevoice-vllm", "vibevoice-transformers", "vibevoice-streaming", "vibevoice-realtime")


@dataclass(frozen=True)
class Prices:
    """₩ per unit. Defaults follow the plan's §6.4 (≈₩35M per GPU-year ≈ ₩4,000 per GPU-hour)."""

    llm_prompt_per_1k_tokens: float = 0.7
    llm_completion_per_1k_tokens: float = 2.8
    gpu_per_hour: float = 4000.0
    telephony_per_minute: float = 20.0
    # Engines billed per audio minute (hosted APIs); GPU engines are billed through gpu_per_hour instead.
    asr_per_minute: Mapping[str, float] = field(default_factory=dict)
    tts_per_minute: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalyticsSettings:
    prices: Prices = field(default_factory=Prices)
    gpu_engines: tuple[str, ...] = GPU_ENGINES
    # GPU seconds spent per second of synthesized speech on a GPU TTS engine (its real-time factor).
    tts_gpu_rtf: float = 0.3
    run_at_call_end: bool = True
    timezone: str = "Asia/Seoul"  # what a "day" means in the daily figures


@dataclass(frozen=True)
class DashboardSettings:
    listen: tuple[str, int] = ("127.0.0.1", 8095)
    token_env: str = "CALLAGENT_DASHBOARD_TOKEN"
    page_size: int = 50


def _per_minute(s: Section, name: str) -> dict[str, float]:
    raw = s.mapping(name)
    out = {}
    for engine, price in raw.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            raise ConfigError(s.key(f"{name}.{engine}"), f"must be a price >= 0, got {price!r}")
        out[str(engine)] = float(price)
    return out


def parse_analytics(data: Mapping[str, Any] | None) -> AnalyticsSettings:
    s = Section(data, "analytics")
    d, dp = AnalyticsSettings(), Prices()
    p = s.section("prices")
    prices = Prices(
        llm_prompt_per_1k_tokens=p.float("llm_prompt_per_1k_tokens", dp.llm_prompt_per_1k_tokens, lo=0),
        llm_completion_per_1k_tokens=p.float("llm_completion_per_1k_tokens", dp.llm_completion_per_1k_tokens,
                                             lo=0),
        gpu_per_hour=p.float("gpu_per_hour", dp.gpu_per_hour, lo=0),
        telephony_per_minute=p.float("telephony_per_minute", dp.telephony_per_minute, lo=0),
        asr_per_minute=_per_minute(p, "asr_per_minute"),
        tts_per_minute=_per_minute(p, "tts_per_minute"),
    )
    p.done()
    tz = s.str("timezone", d.timezone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(s.key("timezone"), f"unknown time zone {tz!r}") from exc
    cfg = AnalyticsSettings(
        prices=prices,
        gpu_engines=s.str_list("gpu_engines", d.gpu_engines),
        tts_gpu_rtf=s.float("tts_gpu_rtf", d.tts_gpu_rtf, lo=0, hi=10),
        run_at_call_end=s.bool("run_at_call_end", d.run_at_call_end),
        timezone=tz,
    )
    s.done()
    return cfg


def parse_dashboard(data: Mapping[str, Any] | None) -> DashboardSettings:
    s = Section(data, "dashboard")
    d = DashboardSettings()
    cfg = DashboardSettings(
        listen=s.host_port("listen", f"{d.listen[0]}:{d.listen[1]}"),
        token_env=s.str("token_env", d.token_env),
        page_size=s.int("page_size", d.page_size, lo=5, hi=500),
    )
    s.done()
    return cfg
