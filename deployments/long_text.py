"""Long texts: split at sentence boundaries into chunks that fit the LM's context, searched one
after another, and joined with a short crossfade that the stream can follow sample for sample.

A chunk fits when its prompt (with its voice context) plus the speech it may need stays within
max_total_tokens and the request's max_speech_tokens. The speech a text may need is estimated
generously (SPEECH_TOKENS_PER_CHAR), so that a chunk is not cut before its end; without the
request's own max_speech_tokens, a chunk may speak no more than twice that (speech_token_cap).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import sentencex

from llasa_core.search import Candidate, ComputeAccount, SearchResult, StageAccount

# 50 speech tokens/s over 10 characters/s: slower than a TTS voice reads (~14-16 characters/s),
# so a chunk gets room to finish.
SPEECH_TOKENS_PER_CHAR = 5
# A digit is said as up to a word ("1,234,567": 68 characters spoken), so it counts as ten characters.
CHARS_PER_DIGIT = 10
# A chunk without the request's own cap stops at twice its estimate, and never under 2 s: a model
# that runs on past its text (the demo model once said "Excuse me." for 10.7 s, a babbled sentence
# after it) is cut there, not at the default cap, and the search spends no tokens on the rest.
RUNAWAY_FACTOR = 2
MIN_SPEECH_TOKEN_CAP = 100
JOIN_CROSSFADE_SAMPLES = 160  # 10 ms at 16 kHz, between the audio of two chunks


class TextTooLong(ValueError):
    """A sentence that cannot fit the LM's context on its own; the message says what to change."""


def speech_tokens_for(text: str) -> int:
    digits = sum(c.isdigit() for c in text)
    return math.ceil((len(text) + (CHARS_PER_DIGIT - 1) * digits) * SPEECH_TOKENS_PER_CHAR)


def speech_token_cap(text: str, default_cap: int | None) -> int:
    """The speech tokens a chunk may generate when the request set no cap of its own: twice the
    estimate, within [MIN_SPEECH_TOKEN_CAP, default_cap], and never under the estimate itself
    (a chunk longer than the default cap was planned to speak it whole)."""
    estimate = speech_tokens_for(text)
    cap = max(MIN_SPEECH_TOKEN_CAP, RUNAWAY_FACTOR * estimate)
    if default_cap is not None:
        cap = min(cap, default_cap)
    return max(estimate, cap)


def sentences(text: str, language: str) -> list[str]:
    return [s.strip() for s in sentencex.segment(language.split("-")[0].lower(), text) if s.strip()]


def plan_chunks(text: str, language: str, fits: Callable[[str], bool],
                fits_alone: Callable[[str], bool] | None = None) -> list[str]:
    """The whole text when it fits, else consecutive sentences packed greedily while they fit; a
    sentence that does not fit goes alone if it `fits_alone` (the hard limit)."""
    fits_alone = fits_alone or fits
    if fits(text):
        return [text]
    chunks: list[str] = []
    current = ""
    for sentence in sentences(text, language):
        joined = f"{current} {sentence}".strip()
        if fits(joined):
            current = joined
            continue
        if not fits_alone(sentence):
            shown = sentence if len(sentence) <= 80 else sentence[:80] + "..."
            raise TextTooLong(f"the sentence {shown!r} ({len(sentence)} characters) cannot be spoken within this "
                              f"server's limits on its own")
        chunks.append(current)
        current = sentence
    chunks.append(current)
    return [c for c in chunks if c]


class AudioJoiner:
    """Joins chunks' audio with a short crossfade, handing `emit` only samples that will not change:
    the last `fade` samples are held back until the next chunk's start (or the end) is known."""

    def __init__(self, emit: Callable[[np.ndarray], None], fade: int = JOIN_CROSSFADE_SAMPLES):
        self.emit = emit
        self.fade = fade
        self.pending = np.zeros(0, np.float32)
        self.tail: np.ndarray | None = None  # the previous chunk's end, to fade into the next one

    def add(self, samples: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.asarray(samples, np.float32)])
        if self.tail is not None:
            if len(self.pending) < len(self.tail):
                return
            ramp = np.linspace(0.0, 1.0, len(self.tail) + 2, dtype=np.float32)[1:-1]
            head = self.tail * (1.0 - ramp) + self.pending[: len(self.tail)] * ramp
            self.pending = np.concatenate([head, self.pending[len(self.tail):]]).astype(np.float32)
            self.tail = None
        if len(self.pending) > self.fade:
            self._out(self.pending[: len(self.pending) - self.fade])
            self.pending = self.pending[len(self.pending) - self.fade:]

    def end_chunk(self) -> None:
        if self.tail is not None:  # a chunk shorter than the fade: nothing to fade into, keep it whole
            self._out(self.tail)
        self.tail, self.pending = self.pending, np.zeros(0, np.float32)

    def finish(self) -> None:
        for rest in (self.tail, self.pending):
            if rest is not None:
                self._out(rest)
        self.tail, self.pending = None, np.zeros(0, np.float32)

    def _out(self, samples: np.ndarray) -> None:
        if len(samples):
            self.emit(np.array(samples, np.float32))


def merge_results(results: list[SearchResult], audio: np.ndarray) -> SearchResult:
    """One result for a chunked text: the chosen codes and joined audio of every chunk, each chunk's
    chosen candidate as a candidate, and the compute of all the searches summed."""
    chosen = [r.chosen for r in results]
    whole = Candidate(id=chosen[-1].id, codes=[code for c in chosen for code in c.codes],
                      finished=all(c.finished for c in chosen), truncated=any(c.truncated for c in chosen),
                      audio=audio, audio_codes=sum(len(c.codes) for c in chosen))
    for candidate in chosen:
        candidate.audio = None
    account = ComputeAccount()
    for r in results:
        a = r.account
        account.lm_prefill_tokens += a.lm_prefill_tokens
        account.lm_generated_tokens += a.lm_generated_tokens
        _add(account.lm, a.lm)
        _add(account.codec, a.codec)
        for name, v in a.verifiers.items():
            _add(account.verifier(name), v)
        account.wall_seconds += a.wall_seconds
        account.stage_retries += a.stage_retries
    account.first_audio_seconds = results[0].account.first_audio_seconds
    used = [name for r in results for name in r.verifiers_used]
    return SearchResult(strategy=results[0].strategy, chosen=whole, candidates=chosen, account=account,
                        steps=sum(r.steps for r in results), verifiers_used=list(dict.fromkeys(used)),
                        verifiers_failed={k: v for r in results for k, v in r.verifiers_failed.items()})


def _add(total: StageAccount, part: StageAccount) -> None:
    for f in dataclasses.fields(StageAccount):
        setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
