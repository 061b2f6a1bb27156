"""When has the caller finished their turn? A pure policy over silence, the live transcript and an audio model.

A fixed silence is either slow (800–1000 ms after every turn) or cuts callers off at their hesitations. Korean
marks the end of a sentence in its last word (-요, -니다, -다, -까 …) and a continuation just as clearly
(-고, -서, -면, -는데, particles), so the live transcript decides most turns: a sentence-final transcript ends the
turn after `sentence_end_ms` of silence, a clearly open one waits for the fallback `end_silence_ms`. Smart Turn
(audio only) is one calibrated signal: a low score vetoes the fast path, and only a very high score ends a turn
whose transcript says nothing. Time is passed in (milliseconds of silence), so decisions are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import VadConfig
from agent.media.korean_endings import last_word, sentence_end

SENTENCE_END = "sentence_end"
AUDIO_MODEL = "audio_model"
SILENCE = "silence"
FORCED = "forced"


@dataclass(frozen=True)
class TurnSignals:
    """What is known about the utterance at a pause: its transcript so far and the audio model's score."""

    text: str | None = None  # None: no transcript (yet); "" : decoded, nothing recognised
    smart_turn: float | None = None
    closed: str | None = None  # the decoder's closed-segment reading, where it was read (see closed_agrees)

    @property
    def sentence_end(self) -> bool | None:
        return sentence_end(self.text) if self.text else None

    @property
    def closed_agrees(self) -> bool:
        """The closed reading ends a sentence on the same last word as the transcript so far. Vosk writes an
        ending apart from its stem ("어딨 나"); where both readings heard the same final morpheme but the partial
        misread the stem before it ("어린 나": the particle), the closed one, with the language model's
        end-of-sentence weight, reads the ending the caller said."""
        return bool(self.text and self.closed) and sentence_end(self.closed or "") is True \
            and last_word(self.closed or "") == last_word(self.text or "")


NO_SIGNALS = TurnSignals()


@dataclass(frozen=True)
class TurnEnd:
    """Why a turn ended, sent to the controller with the final transcript (`eot`)."""

    reason: str
    silence_ms: int
    sentence_end: bool | None
    smart_turn: float | None
    closed: bool = False  # the sentence ending was read from the closed segment (TurnSignals.closed_agrees)

    def as_dict(self) -> dict[str, object]:
        score = None if self.smart_turn is None else round(self.smart_turn, 3)
        out: dict[str, object] = {"reason": self.reason, "silence_ms": self.silence_ms,
                                  "sentence_end": self.sentence_end, "smart_turn": score}
        if self.closed:
            out["closed"] = True
        return out


class TurnEndPolicy:
    def __init__(self, cfg: VadConfig):
        self.fallback_ms = cfg.end_silence_ms
        self.sentence_end_ms = cfg.sentence_end_ms
        self.audio_model_ms = cfg.audio_model_ms
        self.use_smart_turn = cfg.smart_turn
        self.threshold = cfg.smart_turn_threshold
        self.veto = cfg.smart_turn_veto
        self.closed_check = cfg.closed_check

    def check_points_ms(self) -> tuple[int, ...]:
        """Silences at which the signals are (re)read: the fast path, then the audio model's point, where a
        streaming decoder has also caught up with a sentence ending it had not finished decoding."""
        return tuple(ms for ms in (self.sentence_end_ms, self.audio_model_ms) if ms < self.fallback_ms)

    def may_use_audio_model(self, silence_ms: int) -> bool:
        """Whether a Smart Turn score could matter at this check, before the transcript is known (so the
        score can be computed while the transcript is decoded)."""
        return self.use_smart_turn and (self.veto > 0 or (silence_ms >= self.audio_model_ms and self.threshold <= 1))

    def wants_closed(self, signals: TurnSignals, silence_ms: int) -> bool:
        """Whether to read the closed segment at this check: from `audio_model_ms`, where the transcript so far
        shows no sentence ending. Not sooner: at a short pause the end-of-sentence weight writes a "다" after a
        noun the caller goes on from (hesitations taken rose from 2 % to 11 % when it decided at 240 ms)."""
        return self.closed_check and bool(signals.text) and signals.sentence_end is not True \
            and silence_ms >= self.audio_model_ms

    def needs_audio_model(self, signals: TurnSignals, silence_ms: int) -> bool:
        """Whether a Smart Turn score read now could change the decision: as a veto on a sentence-final
        transcript, or alone once `audio_model_ms` is reached; never when the transcript is clearly open."""
        if not self.use_smart_turn:
            return False
        if signals.sentence_end is True or (signals.closed_agrees and silence_ms >= self.audio_model_ms):
            return self.veto > 0
        return signals.sentence_end is None and silence_ms >= self.audio_model_ms and self.threshold <= 1

    def decide(self, silence_ms: int, signals: TurnSignals, *, vad_silence_ms: int | None = None) -> TurnEnd | None:
        """The turn end after `silence_ms` of silence, or None to keep listening. `vad_silence_ms`, where the
        driver counts it apart, is the silence as the VAD hears it (a word's fading tail counted as voice):
        the fallback waits for that, so a long hesitation after a quiet word end is not cut sooner than
        before; the fast paths count from the last frame of real voice."""
        ends = signals.sentence_end
        score = signals.smart_turn if self.use_smart_turn else None
        if (silence_ms if vad_silence_ms is None else vad_silence_ms) >= self.fallback_ms:
            return TurnEnd(SILENCE, silence_ms, ends, score)
        if ends is True and silence_ms >= self.sentence_end_ms and (score is None or score >= self.veto):
            return TurnEnd(SENTENCE_END, silence_ms, ends, score)
        if ends is not True and signals.closed_agrees and silence_ms >= self.audio_model_ms \
                and (score is None or score >= self.veto):
            return TurnEnd(SENTENCE_END, silence_ms, ends, score, closed=True)
        if ends is None and score is not None and score >= self.threshold and silence_ms >= self.audio_model_ms:
            return TurnEnd(AUDIO_MODEL, silence_ms, ends, score)
        return None

    def forced(self, silence_ms: int, signals: TurnSignals) -> TurnEnd:
        """Max length reached or the stream flushed: the turn ends whatever the signals say."""
        return TurnEnd(FORCED, silence_ms, signals.sentence_end, signals.smart_turn if self.use_smart_turn else None)
