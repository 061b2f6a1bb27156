"""Settings: one YAML file plus environment variables, read once at start into frozen dataclasses.

Every key is validated here; a bad value stops start-up with a ConfigError that names the dotted key and
the reason. Secrets never live in the YAML: a key ending in `_env` names the environment variable to read.
Each room validates its own block with `Section` (agent/config_reader.py): the controller in agent/call/settings.py,
the dialog, analytics and every engine next to their code, so this module knows the file's shape without knowing
every engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.analytics.settings import parse_analytics, parse_dashboard
from agent.call.settings import ControllerConfig, parse_controller
from agent.config_reader import ConfigError, Section
from agent.dialog.settings import parse_dialog_settings

ENV_CONFIG = "CALLAGENT_CONFIG"
ENV_DB_DSN = "CALLAGENT_DB_DSN"
DEFAULT_CONFIG_NAME = "callagent.yaml"


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2
    min_speech_ms: int = 300
    # Fallback end of turn: this much silence ends the turn whatever the transcript says. Silence as the VAD
    # hears it (a fading word tail counts as voice), unlike the fast paths: counted from the last frame of
    # real voice, an 800 ms hesitation after a quiet word end reached 1000 ms.
    end_silence_ms: int = 900
    prefix_pad_ms: int = 200
    max_utterance_s: float = 30.0
    # ASR starts speculatively after this much silence; if the caller stays silent until the turn ends
    # the result is ready at once (0 = off). Never affects what is transcribed, only when.
    speculative_ms: int = 200
    # Voiced this long while the agent talks → stop the agent (barge-in); a turn still needs min_speech_ms.
    barge_in_ms: int = 160
    # Silence inside an utterance that sends speech_paused and reads the live transcript for the turn end.
    pause_ms: int = 200
    # Voice of one utterance that makes it a real interruption (speech_continuing), counted on frames within
    # tail_drop_db of its loudest: espeak-ng's 네/예/응 reach 300-340 ms, "잠깐만요…" 400 ms after 0.42 s.
    barge_in_confirm_ms: int = 400
    # The transcript ends a Korean sentence: the turn ends after this much silence.
    sentence_end_ms: int = 240
    # No verdict from the transcript: the audio model alone may end the turn after this much silence.
    audio_model_ms: int = 500
    # Smart Turn v3.2 (audio end-of-turn model). On Korean it scores true ends 0.976-0.99 and hesitations
    # 0.01-0.988 (docs/benchmarks.md), so it can veto the fast path but not end a turn alone.
    smart_turn: bool = True
    smart_turn_threshold: float = 0.995  # ends a turn with no transcript verdict at audio_model_ms (> 1: never)
    smart_turn_veto: float = 0.85  # below this a sentence-final transcript waits for the fallback (0: off)
    # At audio_model_ms, where the transcript so far shows no sentence ending, read the decoder's closed segment
    # too (Vosk): if it ends a sentence on the same last word, the turn ends there (docs/architecture.md).
    closed_check: bool = True
    # Inside an utterance a voiced frame this far below its loudest frame is silence: webrtcvad's hangover
    # calls a word's fading tail speech for 100-180 ms, which every end of turn would wait out (0: off).
    tail_drop_db: float = 30.0


@dataclass(frozen=True)
class WorkerConfig:
    listen: tuple[str, int] = ("127.0.0.1", 8090)
    vad: VadConfig = field(default_factory=VadConfig)
    asr_engine: str = "vosk"
    # Options for every configured engine, keyed by engine name; each engine validates its own block.
    asr_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    asr_timeout_s: float = 10.0
    # Lets a test or demo caller deliver a transcript as text (marked `text-injected`); off in production.
    allow_text_injection: bool = False
    hotwords_dir: str = "hotwords"
    metrics_listen: tuple[str, int] | None = None
    # Limits, so that no peer can take the worker down (docs/reliability.md).
    max_connections: int = 400  # over this a new fork is closed with 1013 (try again later)
    idle_timeout_s: float = 10.0  # a fork that sends no audio this long is closed
    max_frame_bytes: int = 65536  # 20 ms of 16 kHz stereo is 1,280 B; a bigger message closes the fork (1009)
    max_pending_utterances: int = 4  # utterances waiting for ASR per call; beyond it they are merged or dropped
    fork_secret_env: str = "CALLAGENT_FORK_SECRET"  # the fork token's HMAC key; unset = no token (dev only)


@dataclass(frozen=True)
class TtsConfig:
    engine: str = "espeak"
    voice: str = "ko"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    spool_dir: str = "var/spool"
    cache_dir: str = "var/tts-cache"
    max_chunk_chars: int = 60
    # Where the TTS engine runs: "local" (in the controller) or the URL of a `callagent tts-worker`.
    worker_url: str = "local"


@dataclass(frozen=True)
class StoreConfig:
    dsn: str | None = None
    embedded_dir: str = "var/pg"
    spool_dir: str = "var/db-spool"
    max_queue: int = 1000  # records in memory; a kill -9 loses at most this + one batch (docs/reliability.md)
    write_timeout_s: float = 5.0  # a write to a hung database is cut after this and spooled


@dataclass(frozen=True)
class CallbacksConfig:
    """`callagent callbacks`: stored callback requests placed with `originate` over the inbound event socket."""

    esl: tuple[str, int] = ("127.0.0.1", 8021)
    esl_password: str | None = None  # from esl_password_env
    # `{number}` is the caller's number; the answered call is handed to the agent hosts below.
    dial_string: str = "sofia/gateway/carrier/{number}"
    agent_socket: str = "127.0.0.1:8084|127.0.0.1:8085"
    caller_id: str = ""
    delay_s: float = 300.0  # a request without an agreed time is called back this long after it was made
    retry_delay_s: float = 600.0
    max_attempts: int = 3
    originate_timeout_s: float = 45.0
    poll_s: float = 5.0


@dataclass(frozen=True)
class PrivacyConfig:
    # Recordings are sealed with AES-256-GCM; the key (base64 of 32 bytes) comes from this variable or file.
    recording_key_env: str = "CALLAGENT_RECORDING_KEY"
    recording_key_file: str = ""
    retention_days: int = 90  # `callagent purge` deletes calls, transcripts and recordings older than this


@dataclass(frozen=True)
class Config:
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    # The dialog block is validated by agent.dialog.settings; kept raw here so that room owns its shape.
    dialog: Mapping[str, Any] = field(default_factory=dict)
    # Prices and dashboard access, validated by agent.analytics.settings (kept raw for the same reason).
    analytics: Mapping[str, Any] = field(default_factory=dict)
    dashboard: Mapping[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"
    log_format: str = "text"  # json: one JSON object per line with the call id (agent/ops/logs.py)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    base_dir: str = "."

    def path(self, relative: str) -> Path:
        """Resolves a configured path against the directory of the config file."""
        p = Path(relative)
        return p if p.is_absolute() else Path(self.base_dir) / p


def _vad(s: Section) -> VadConfig:
    d = VadConfig()
    cfg = VadConfig(
        aggressiveness=s.int("aggressiveness", d.aggressiveness, lo=0, hi=3),
        min_speech_ms=s.int("min_speech_ms", d.min_speech_ms, lo=20, hi=5000),
        end_silence_ms=s.int("end_silence_ms", d.end_silence_ms, lo=100, hi=5000),
        prefix_pad_ms=s.int("prefix_pad_ms", d.prefix_pad_ms, lo=0, hi=2000),
        max_utterance_s=s.float("max_utterance_s", d.max_utterance_s, lo=1, hi=300),
        speculative_ms=s.int("speculative_ms", d.speculative_ms, lo=0, hi=5000),
        barge_in_ms=s.int("barge_in_ms", d.barge_in_ms, lo=0, hi=5000),
        pause_ms=s.int("pause_ms", d.pause_ms, lo=20, hi=5000),
        barge_in_confirm_ms=s.int("barge_in_confirm_ms", d.barge_in_confirm_ms, lo=20, hi=5000),
        sentence_end_ms=s.int("sentence_end_ms", d.sentence_end_ms, lo=20, hi=5000),
        audio_model_ms=s.int("audio_model_ms", d.audio_model_ms, lo=20, hi=5000),
        smart_turn=s.bool("smart_turn", d.smart_turn),
        smart_turn_threshold=s.float("smart_turn_threshold", d.smart_turn_threshold, lo=0, hi=1.01),
        smart_turn_veto=s.float("smart_turn_veto", d.smart_turn_veto, lo=0, hi=1),
        closed_check=s.bool("closed_check", d.closed_check),
        tail_drop_db=s.float("tail_drop_db", d.tail_drop_db, lo=0, hi=90),
    )
    if cfg.speculative_ms and cfg.speculative_ms >= cfg.end_silence_ms:
        raise ConfigError(s.key("speculative_ms"), "must be below end_silence_ms (or 0 to turn it off)")
    if not cfg.pause_ms <= cfg.sentence_end_ms <= cfg.end_silence_ms:
        raise ConfigError(s.key("sentence_end_ms"), "must lie between pause_ms and end_silence_ms")
    for name in ("min_speech_ms", "end_silence_ms", "prefix_pad_ms", "speculative_ms", "barge_in_ms", "pause_ms",
                 "barge_in_confirm_ms", "sentence_end_ms", "audio_model_ms"):
        if getattr(cfg, name) % 20:
            raise ConfigError(s.key(name), "must be a multiple of 20 (the frame length in ms)")
    s.done()
    return cfg


def _engine_options(s: Section, name: str) -> dict[str, Mapping[str, Any]]:
    raw = s.mapping(name)
    for engine, options in raw.items():
        if not isinstance(options, Mapping):
            raise ConfigError(s.key(f"{name}.{engine}"), "must be a mapping of engine options")
    return dict(raw)


def _worker(s: Section) -> WorkerConfig:
    d = WorkerConfig()
    asr = s.section("asr")
    cfg = WorkerConfig(
        listen=s.host_port("listen", f"{d.listen[0]}:{d.listen[1]}"),
        vad=_vad(s.section("vad")),
        asr_engine=asr.str("engine", d.asr_engine),
        asr_options=_engine_options(asr, "engines"),
        asr_timeout_s=asr.float("timeout_s", d.asr_timeout_s, lo=0.5, hi=120),
        allow_text_injection=s.bool("allow_text_injection", d.allow_text_injection),
        hotwords_dir=s.str("hotwords_dir", d.hotwords_dir),
        metrics_listen=s.host_port("metrics_listen", None),
        max_connections=s.int("max_connections", d.max_connections, lo=1, hi=100_000),
        idle_timeout_s=s.float("idle_timeout_s", d.idle_timeout_s, lo=0.5, hi=3600),
        max_frame_bytes=s.int("max_frame_bytes", d.max_frame_bytes, lo=4096, hi=16 << 20),
        max_pending_utterances=s.int("max_pending_utterances", d.max_pending_utterances, lo=1, hi=100),
        fork_secret_env=s.str("fork_secret_env", d.fork_secret_env),
    )
    asr.done()
    s.done()
    return cfg


def _tts(s: Section) -> TtsConfig:
    d = TtsConfig()
    worker_url = s.str("worker_url", d.worker_url)
    if worker_url != "local" and not worker_url.startswith(("http://", "https://")):
        raise ConfigError(s.key("worker_url"), "must be 'local' or an http(s):// URL")
    cfg = TtsConfig(
        engine=s.str("engine", d.engine),
        voice=s.str("voice", d.voice),
        options=_engine_options(s, "engines"),
        spool_dir=s.str("spool_dir", d.spool_dir),
        cache_dir=s.str("cache_dir", d.cache_dir),
        max_chunk_chars=s.int("max_chunk_chars", d.max_chunk_chars, lo=10, hi=500),
        worker_url=worker_url,
    )
    s.done()
    return cfg


def _store(s: Section) -> StoreConfig:
    d = StoreConfig()
    configured = s.str("dsn", None)  # read even when the environment wins, so the key counts as known
    dsn = os.environ.get(ENV_DB_DSN) or configured
    if dsn is not None and not dsn.startswith(("postgresql://", "postgres://", "host=", "dbname=")):
        raise ConfigError(s.key("dsn"), "must be a PostgreSQL URI (postgresql://…) or a key=value DSN")
    cfg = StoreConfig(
        dsn=dsn,
        embedded_dir=s.str("embedded_dir", d.embedded_dir),
        spool_dir=s.str("spool_dir", d.spool_dir),
        max_queue=s.int("max_queue", d.max_queue, lo=10, hi=1_000_000),
        write_timeout_s=s.float("write_timeout_s", d.write_timeout_s, lo=0.5, hi=120),
    )
    s.done()
    return cfg


def _callbacks(s: Section) -> CallbacksConfig:
    d = CallbacksConfig()
    dial = s.str("dial_string", d.dial_string)
    if "{number}" not in dial:
        raise ConfigError(s.key("dial_string"), "must contain {number}")
    cfg = CallbacksConfig(
        esl=s.host_port("esl", f"{d.esl[0]}:{d.esl[1]}"),
        esl_password=s.secret("esl_password", "CALLAGENT_ESL_PASSWORD"),
        dial_string=dial,
        agent_socket=s.str("agent_socket", d.agent_socket),
        caller_id=s.str("caller_id", d.caller_id),
        delay_s=s.float("delay_s", d.delay_s, lo=0, hi=7 * 86400),
        retry_delay_s=s.float("retry_delay_s", d.retry_delay_s, lo=1, hi=86400),
        max_attempts=s.int("max_attempts", d.max_attempts, lo=1, hi=20),
        originate_timeout_s=s.float("originate_timeout_s", d.originate_timeout_s, lo=5, hi=300),
        poll_s=s.float("poll_s", d.poll_s, lo=0.05, hi=600),
    )
    s.done()
    return cfg


def _privacy(s: Section) -> PrivacyConfig:
    d = PrivacyConfig()
    cfg = PrivacyConfig(
        recording_key_env=s.str("recording_key_env", d.recording_key_env),
        recording_key_file=s.str("recording_key_file", d.recording_key_file),
        retention_days=s.int("retention_days", d.retention_days, lo=1, hi=36500),
    )
    s.done()
    return cfg


def parse_config(data: Mapping[str, Any] | None, base_dir: str = ".") -> Config:
    """Builds a validated Config from an already-parsed YAML mapping."""
    root = Section(data, "")
    cfg = Config(
        controller=parse_controller(root.section("controller")),
        worker=_worker(root.section("worker")),
        tts=_tts(root.section("tts")),
        store=_store(root.section("store")),
        dialog=root.mapping("dialog"),
        analytics=root.mapping("analytics"),
        dashboard=root.mapping("dashboard"),
        log_level=root.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        log_format=root.choice("log_format", ("text", "json"), "text"),
        callbacks=_callbacks(root.section("callbacks")),
        privacy=_privacy(root.section("privacy")),
        base_dir=base_dir,
    )
    root.done()
    parse_dialog_settings(cfg.dialog)
    parse_analytics(cfg.analytics)
    parse_dashboard(cfg.dashboard)
    return cfg


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Loads `path`, else $CALLAGENT_CONFIG, else ./callagent.yaml if present, else the built-in defaults."""
    chosen = path or os.environ.get(ENV_CONFIG)
    if chosen is None and Path(DEFAULT_CONFIG_NAME).exists():
        chosen = DEFAULT_CONFIG_NAME
    if chosen is None:
        return parse_config({}, base_dir=".")
    p = Path(chosen)
    if not p.is_file():
        raise ConfigError("<file>", f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", f"{p} is not valid YAML: {exc}") from exc
    return parse_config(data, base_dir=str(p.resolve().parent))
