"""Word timestamps of chosen audio, aligned to the request's own text (for captions, lip sync).

An LLM-based TTS has no durations, but the service already runs Whisper. This forces Whisper's
cross-attention alignment (faster-whisper's `find_alignment`: the alignment heads' attention,
median filtered, through dynamic time warping) onto the tokens of the text the user asked for,
not onto what the ASR heard, so every word of the request gets a start and an end even where the
model said it badly; `probability` (Whisper's probability of the word's tokens) is low there.
Words are the text's own, split as Whisper splits them (punctuation stays on its word). Clips
use the ASR verifier's length buckets; the batch runs one encoder pass per bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from llasa_core.audio import SAMPLE_RATE

HOP = 160  # Whisper's mel hop: 100 frames per second


@dataclass(frozen=True)
class WordTime:
    word: str
    start: float  # seconds from the start of the audio
    end: float
    probability: float


def word_timestamps(transcriber, audios: Sequence[np.ndarray], texts: Sequence[str], language: str = "en") -> list[list[WordTime]]:
    """One list of WordTime per clip, in the order of the words of its text.

    `transcriber` is a `verifiers.asr.FasterWhisperTranscriber` (the only backend with alignment
    heads here); clips must be 16 kHz float32 of at most 30 s.
    """
    from faster_whisper.audio import pad_or_trim

    if len(audios) != len(texts):
        raise ValueError(f"got {len(audios)} clips but {len(texts)} texts; pass one text per clip")
    model = transcriber.model
    tokenizer = transcriber._tokenizer(language)
    out: list[list[WordTime]] = [[] for _ in audios]
    buckets: dict[float, list[int]] = {}
    for i, (audio, text) in enumerate(zip(audios, texts)):
        seconds = audio.size / SAMPLE_RATE
        if seconds > 30:
            raise ValueError(f"clip {i} is {seconds:.1f} s; word timestamps take clips of at most 30 s")
        if text.strip() and audio.size >= HOP * 2:
            buckets.setdefault(transcriber.bucket_seconds(seconds), []).append(i)
    for seconds, members in buckets.items():
        frames = int(round(seconds * 100))
        features = np.stack([pad_or_trim(model.feature_extractor(audios[i])[..., :-1], frames) for i in members])
        encoded = model.encode(features)
        tokens = [tokenizer.encode(" " + texts[i].strip()) for i in members]
        # One alignment call per clip: CTranslate2 aligns a batch to a single num_frames.
        for row, i in enumerate(members):
            content = audios[i].size // HOP
            words = model.find_alignment(tokenizer, [tokens[row]], _row(encoded, row), content)[0]
            out[i] = _words(words, audios[i].size / SAMPLE_RATE)
    return out


def _words(aligned: list[dict], duration: float) -> list[WordTime]:
    """faster-whisper's words as WordTime; punctuation Whisper splits off (a final ".") joins the
    word before it, so the words are the text's own."""
    out: list[WordTime] = []
    for w in aligned:
        word = w["word"].strip()
        if not word:
            continue
        if out and not any(ch.isalnum() for ch in word):
            out[-1] = WordTime(out[-1].word + word, out[-1].start, out[-1].end, out[-1].probability)
            continue
        out.append(WordTime(word, round(min(float(w["start"]), duration), 3), round(min(float(w["end"]), duration), 3),
                            round(float(w["probability"]), 3)))
    return out


def _row(encoded, row: int):
    """One item of a CTranslate2 encoder batch, as a batch of one."""
    import ctranslate2

    array = np.asarray(encoded.to_device(ctranslate2.Device.cpu) if hasattr(encoded, "to_device") else encoded)
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array[row : row + 1]))
