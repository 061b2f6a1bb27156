"""The speech worker's counters: one set for the whole process, written only from its event loop thread."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class WorkerStats:
    """Counters for the whole worker; only the event loop thread writes them."""

    connections: int = 0
    active: int = 0
    rejected: int = 0
    messages: int = 0
    frames: int = 0
    bytes: int = 0
    odd_frames: int = 0  # binary messages with an odd byte count (a sample split across messages)
    utterances: int = 0
    asr_calls: int = 0
    asr_ms_sum: float = 0.0
    asr_errors: int = 0
    asr_timeouts: int = 0
    injected: int = 0
    live_decoded: int = 0  # finals decoded while the caller spoke (engines with open_utterance)
    speculative_used: int = 0  # finals whose ASR had already run during the silence
    speculative_wasted: int = 0  # speculative passes dropped because the caller spoke again
    errors: int = 0  # protocol violations and failed sends
    echo_frames: int = 0  # voiced caller frames gated out as the agent's own echo (stereo forks)
    smart_turn_calls: int = 0
    turn_previews: int = 0
    transcripts_late: int = 0  # turn checks whose transcript so far was not decoded within SIGNAL_TIMEOUT_S
    turns_sentence_end: int = 0  # turns ended by the end-of-turn reasons (agent.media.turn_end)
    turns_audio_model: int = 0
    turns_silence: int = 0
    turns_forced: int = 0
    intake_dropped: int = 0  # messages dropped because a session fell more than INTAKE_MAX behind
    utterances_dropped: int = 0  # utterances dropped because ASR was max_pending_utterances behind

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
