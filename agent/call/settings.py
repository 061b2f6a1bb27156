"""The controller's settings (`controller:` in the YAML): the call's prompts, timeouts, fork and hand-off."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config_reader import ConfigError, Section
from agent.privacy.notice import greeting_problem


@dataclass(frozen=True)
class ControllerConfig:
    listen: tuple[str, int] = ("127.0.0.1", 8084)
    max_calls: int = 200
    fork_url: str = "ws://127.0.0.1:8090"
    fork_rate: int = 16000
    fork_bug: str = "callagent"
    esl_reply_timeout_s: float = 5.0
    greeting: str = (
        "안녕하세요, 고객센터입니다. 저는 인공지능 상담원이며 통화 내용은 상담 품질을 위해 기록되며 "
        "녹음될 수 있습니다. "
        "무엇을 도와드릴까요?"
    )
    apology: str = "죄송합니다. 상담원에게 바로 연결해 드릴게요."  # short: a fault reaches a human within 8 s
    transfer_notice: str = "상담원에게 연결해 드리겠습니다. 잠시만 기다려 주세요."
    # A silent caller hears these in turn (each after no_input_timeout_s), then no_input_action happens.
    no_input_prompts: tuple[str, ...] = (
        "여보세요? 듣고 계시면 말씀해 주세요.",
        "혹시 제 목소리가 들리시면 말씀해 주시거나 아무 버튼이나 눌러 주세요.",
    )
    no_input_action: str = "human"  # human: transfer (reason no_input) | hangup: say goodbye, then hang up
    goodbye: str = "응답이 없으셔서 통화를 종료하겠습니다. 이용해 주셔서 감사합니다."
    human_extension: str = "human"
    human_dialplan: str = "XML"
    human_context: str = "ai_escalation"
    dtmf_human_digit: str = "0"
    # The worker must say "connected" within this time or the caller is handed to a human.
    fork_connect_timeout_s: float = 3.0
    # Caller silent this long after the agent stopped talking: prompt once, then hand off to a human.
    no_input_timeout_s: float = 20.0
    turn_timeout_s: float = 8.0
    metrics_listen: tuple[str, int] | None = None  # Prometheus /metrics, /ready, /live, /status; off unless set
    # SIGTERM: live calls get this long to finish, then go to the human queue (k8s grace period must exceed it).
    drain_timeout_s: float = 300.0
    # Every controller host's ops listener (http://host:port), read by `callagent status`.
    status_urls: tuple[str, ...] = ()
    # Fork: stereo puts what the caller hears on the right channel, so the worker can tell echo from speech.
    fork_mix: str = "stereo"
    fork_secret_env: str = "CALLAGENT_FORK_SECRET"  # per-call fork token key; unset = no token (dev only)
    # No heartbeat (or no audio progress) from the worker this long: the fork is lost (0 = off).
    fork_heartbeat_timeout_s: float = 2.5
    # A paused reply resumes after this long unless the interruption was confirmed.
    barge_in_max_pause_s: float = 1.2
    # Start the reply on the worker's turn_preview and hold its audio until the end of turn is confirmed.
    preemptive_reply: bool = True
    dtmf_gap_s: float = 2.5  # keypad entry ends after this gap (or at #)
    inband_dtmf: bool = False  # trunks that send DTMF as tones: run start_dtmf on answer
    # A dialog or ASR step that has not answered by then gets a filler: the caller never waits in silence.
    filler_after_s: float = 1.5
    slow_filler: str = "잠시만요, 확인하고 있습니다."
    slow_filler_more: str = "조금만 더 기다려 주세요."  # the second, if the step is still silent after the first
    recording_dir: str = ""  # the AI part of each call is recorded here (stereo WAV); empty = off


def parse_controller(s: Section) -> ControllerConfig:
    d = ControllerConfig()
    fork_url = s.str("fork_url", d.fork_url)
    if not fork_url.startswith(("ws://", "wss://")):
        raise ConfigError(s.key("fork_url"), "must start with ws:// or wss://")
    fork_rate = s.int("fork_rate", d.fork_rate)
    if fork_rate not in (8000, 16000):
        # mod_audio_fork takes any multiple of 8000, but the worker's VAD runs at 8 or 16 kHz only.
        raise ConfigError(s.key("fork_rate"), f"must be 8000 or 16000, got {fork_rate}")
    bug = s.str("fork_bug", d.fork_bug)
    if not bug.replace("_", "").isalnum():
        raise ConfigError(s.key("fork_bug"), "must be letters, digits and '_' (it is a FreeSWITCH argument)")
    digit = s.str("dtmf_human_digit", d.dtmf_human_digit)
    if digit not in tuple("0123456789*#"):
        raise ConfigError(s.key("dtmf_human_digit"), "must be one DTMF digit")
    cfg = ControllerConfig(
        listen=s.host_port("listen", f"{d.listen[0]}:{d.listen[1]}"),
        max_calls=s.int("max_calls", d.max_calls, lo=1, hi=5000),
        fork_url=fork_url,
        fork_rate=fork_rate,
        fork_bug=bug,
        esl_reply_timeout_s=s.float("esl_reply_timeout_s", d.esl_reply_timeout_s, lo=0.1, hi=60),
        greeting=s.str("greeting", d.greeting),
        apology=s.str("apology", d.apology),
        transfer_notice=s.str("transfer_notice", d.transfer_notice),
        no_input_prompts=s.str_list("no_input_prompts", d.no_input_prompts),
        no_input_action=s.choice("no_input_action", ("human", "hangup"), d.no_input_action),
        goodbye=s.str("goodbye", d.goodbye),
        human_extension=s.str("human_extension", d.human_extension),
        human_dialplan=s.str("human_dialplan", d.human_dialplan),
        human_context=s.str("human_context", d.human_context),
        dtmf_human_digit=digit,
        fork_connect_timeout_s=s.float("fork_connect_timeout_s", d.fork_connect_timeout_s, lo=0.1, hi=30),
        no_input_timeout_s=s.float("no_input_timeout_s", d.no_input_timeout_s, lo=1, hi=600),
        turn_timeout_s=s.float("turn_timeout_s", d.turn_timeout_s, lo=0.5, hi=120),
        metrics_listen=s.host_port("metrics_listen", None),
        drain_timeout_s=s.float("drain_timeout_s", d.drain_timeout_s, lo=0, hi=86400),
        status_urls=tuple(u.rstrip("/") for u in s.str_list("status_urls", d.status_urls)),
        fork_mix=s.choice("fork_mix", ("mono", "stereo"), d.fork_mix),
        fork_secret_env=s.str("fork_secret_env", d.fork_secret_env),
        fork_heartbeat_timeout_s=s.float("fork_heartbeat_timeout_s", d.fork_heartbeat_timeout_s, lo=0, hi=60),
        barge_in_max_pause_s=s.float("barge_in_max_pause_s", d.barge_in_max_pause_s, lo=0.2, hi=10),
        preemptive_reply=s.bool("preemptive_reply", d.preemptive_reply),
        dtmf_gap_s=s.float("dtmf_gap_s", d.dtmf_gap_s, lo=0.3, hi=30),
        inband_dtmf=s.bool("inband_dtmf", d.inband_dtmf),
        filler_after_s=s.float("filler_after_s", d.filler_after_s, lo=0.3, hi=30),
        slow_filler=s.str("slow_filler", d.slow_filler),
        slow_filler_more=s.str("slow_filler_more", d.slow_filler_more),
        recording_dir=s.str("recording_dir", d.recording_dir),
    )
    for url in cfg.status_urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(s.key("status_urls"), f"must be http(s):// URLs, got {url!r}")
    for name in ("greeting", "apology", "transfer_notice", "goodbye", "slow_filler", "slow_filler_more"):
        if not getattr(cfg, name).strip():
            raise ConfigError(s.key(name), "must not be empty: the caller would hear silence")
    # The greeting is the AI disclosure and the recording notice; it must match what is really recorded.
    problem = greeting_problem(cfg.greeting, recording=bool(getattr(cfg, "recording_dir", "")))
    if problem is not None:
        raise ConfigError(s.key("greeting"), problem)
    if not cfg.no_input_prompts or not all(p.strip() for p in cfg.no_input_prompts):
        raise ConfigError(s.key("no_input_prompts"), "must be one or more non-empty prompts")
    s.done()
    return cfg
