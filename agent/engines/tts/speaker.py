"""Turns reply text into spooled WAV files, one text chunk at a time, yielding each as soon as it is written.

The caller queues each file with `uuid_broadcast` while the next chunk is synthesized; stopping the
iteration (barge-in) stops synthesis.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.dialog.language import of_reply
from agent.dialog.speakable import speakable
from agent.engines.tts.base import AudioChunk, TtsEngine
from agent.engines.tts.chunker import SentenceChunker, split_sentences
from agent.engines.tts.spool import Spool, check_name, check_rate, resample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpokenChunk:
    path: Path
    # The text this file completes; "" for the leading parts of a text split across files, so joining
    # the texts of the files that played gives exactly the text the caller heard in full.
    text: str
    index: int
    duration_s: float
    synth_ms: float  # engine time for this file's audio (excludes the write)
    # What the engine was given for this file's sentence: the spoken form ("만 이천 원" for "12,000원").
    tts_text: str = ""


class Speaker:
    """Chunks, synthesizes and spools one utterance at a time for one engine and voice.

    A streaming engine (several AudioChunks per text) gets its audio split into parts of at least
    `part_min_s` seconds, so the first part plays before the engine has finished the whole text.
    Each sentence goes to the engine in its spoken form (`speakable`); `voices` maps a language code to the
    voice that speaks it ("en" → an English voice), `voice` is Korean's and any language's without one.
    """

    def __init__(self, engine: TtsEngine, spool: Spool, *, voice: str, max_chunk_chars: int,
                 first_chunk_chars: int | None = 30, part_min_s: float = 1.0,
                 voices: dict[str, str] | None = None):
        if part_min_s <= 0:
            raise ValueError(f"part_min_s must be > 0, got {part_min_s}")
        SentenceChunker(max_chunk_chars, first_chunk_chars)  # validates the limits
        self.engine = engine
        self.spool = spool
        self.voice = voice
        # Without a map from the config, the engine's own (espeak-ng: "en"); else the one voice for all.
        self.voices = dict(voices or getattr(engine, "language_voices", {}))
        self.voices.pop("ko", None)  # Korean always speaks with the configured `voice`
        self.max_chunk_chars = max_chunk_chars
        self.first_chunk_chars = first_chunk_chars
        self.part_min_s = part_min_s
        # Pooled GPU engines take `call_id` to share model instances fairly between calls.
        self._takes_call_id = "call_id" in inspect.signature(engine.synthesize).parameters

    def speak(self, call_id: str, utt_id: str, text: str, rate: int, *,
              language: str | None = None) -> Iterator[SpokenChunk]:
        """Splits `text` (short first chunk), then yields one SpokenChunk per written file, in order."""
        self._check(call_id, utt_id, rate)
        pieces = split_sentences(text, self.max_chunk_chars, first_max_chars=self.first_chunk_chars)
        return self._run(call_id, utt_id, pieces, rate, language)

    def speak_stream(self, call_id: str, utt_id: str, pieces: Iterable[str], rate: int, *,
                     language: str | None = None) -> Iterator[SpokenChunk]:
        """Like `speak` for text that arrives over time; each piece is already a complete speakable chunk."""
        self._check(call_id, utt_id, rate)
        return self._run(call_id, utt_id, pieces, rate, language)

    def voice_for(self, language: str) -> str:
        return self.voices.get(language, self.voice)

    @staticmethod
    def _check(call_id: str, utt_id: str, rate: int) -> None:
        # Checked at call time, not at the first next(): the caller learns of bad input where it made it.
        check_name("call_id", call_id)
        check_name("utt_id", utt_id)
        check_rate(rate)

    def _run(self, call_id: str, utt_id: str, pieces: Iterable[str], rate: int,
             language: str | None) -> Iterator[SpokenChunk]:
        index = 0
        for piece in pieces:
            text = " ".join(piece.split())
            if not text:
                continue
            # No language given: each sentence by its script, so a call that switched to English gets the
            # English voice without the call session knowing about languages.
            lang = language or of_reply(text)
            said = speakable(text, lang)
            with closing(self._synthesize(call_id, said, self.voice_for(lang))) as parts:
                for audio, synth_ms, last in parts:
                    path = self.spool.write(call_id, f"{utt_id}-{index:03d}", audio, rate)
                    yield SpokenChunk(path=path, text=text if last else "", index=index,
                                      duration_s=audio.duration_s, synth_ms=synth_ms,
                                      tts_text=said if last else "")
                    index += 1

    def _synthesize(self, call_id: str, text: str, voice: str) -> Iterator[tuple[AudioChunk, float, bool]]:
        """(audio, engine ms, is-last-part) per file; holds one engine chunk back to know which is last."""
        pending: list[AudioChunk] = []
        pending_ms = 0.0
        if self._takes_call_id:
            chunks = iter(self.engine.synthesize(text, voice, call_id=call_id))  # type: ignore[call-arg]
        else:
            chunks = iter(self.engine.synthesize(text, voice))
        try:
            while True:
                started = time.perf_counter()
                audio = next(chunks, None)
                took_ms = (time.perf_counter() - started) * 1000
                if audio is None:
                    pending_ms += took_ms
                    break
                if len(audio.pcm) == 0:
                    pending_ms += took_ms
                    continue
                if pending and sum(c.duration_s for c in pending) >= self.part_min_s:
                    yield _join(pending), pending_ms, False
                    pending, pending_ms = [], 0.0
                pending.append(audio)
                pending_ms += took_ms
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # stops a streaming engine when the caller barged in
        if pending:
            yield _join(pending), pending_ms, True
        else:
            log.debug("engine %s returned no audio for a %d-character chunk", self.engine.name, len(text))


def _join(chunks: list[AudioChunk]) -> AudioChunk:
    if len(chunks) == 1:
        return chunks[0]
    rate = chunks[0].sample_rate
    pcm = [c.pcm if c.sample_rate == rate else resample(c.pcm, c.sample_rate, rate) for c in chunks]
    return AudioChunk(pcm=np.concatenate(pcm), sample_rate=rate)
