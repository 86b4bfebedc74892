"""Reference-voice similarity: cosine between the embedding of a candidate and of the reference.

Shared by the speaker and emotion verifiers; they differ only in the embedder. Mapping:
score = clip(cosine, 0, 1). It keeps the scale of the Llasa paper's SIM (a cosine, reported as is)
for every pair that resembles at all, and sends opposite embeddings to the worst score. `raw` is
the cosine.

Without a reference voice in the request the verifier does not apply: score None and a reason. A
reference that cannot be used (empty, silent, NaN...) is the request's fault, not the candidate's:
also None with the reason. Reference embeddings are cached by a hash of the samples, so a search
that scores many candidates against one reference embeds it once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Protocol, Sequence

import numpy as np

from llasa_core.stages import ScoreContext, VerifierScore
from verifiers.inputs import Checked, check_batch, check_waveform, worst


class Embedder(Protocol):
    def embed(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """One embedding per 16 kHz float32 clip, shape (batch, dim)."""


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class SimilarityVerifier:
    def __init__(
        self, embedder: Embedder, name: str, metric: str, min_seconds: float = 0.5, max_seconds: float = 120.0,
        cache_size: int = 64,
    ):
        self.name = name
        self.metric = metric
        self.embedder = embedder
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray | str] = OrderedDict()  # hash -> unit embedding or reason
        self.reference_embeddings = 0  # how many references were embedded (not served from the cache)

    def _check(self, audio: np.ndarray) -> Checked:
        return check_waveform(audio, self.min_seconds, self.max_seconds)

    def _references(self, contexts: Sequence[ScoreContext]) -> list[np.ndarray | str]:
        """Unit embedding of each context's reference, or the reason it has none."""
        keys = []
        missing: dict[str, np.ndarray] = {}
        for context in contexts:
            if context.reference_audio is None:
                keys.append(None)
                continue
            samples = np.ascontiguousarray(context.reference_audio)
            key = hashlib.sha1(samples.tobytes() + str(samples.dtype).encode()).hexdigest()
            keys.append(key)
            if key not in self._cache and key not in missing:
                missing[key] = samples
        usable = {}
        for key, samples in missing.items():
            checked = self._check(samples)
            if checked.audio is None:
                self._store(key, f"reference voice unusable: {checked.reason}")
            else:
                usable[key] = checked.audio
        if usable:
            self.reference_embeddings += len(usable)
            for key, vector in zip(usable, _unit(self.embedder.embed(list(usable.values())))):
                self._store(key, vector)
        out = []
        for key in keys:
            if key is None:
                out.append("no reference voice in the request")
            else:
                self._cache.move_to_end(key)
                out.append(self._cache[key])
        return out

    def _store(self, key: str, value: np.ndarray | str) -> None:
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def score(self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> list[VerifierScore]:
        check_batch(waveforms, contexts)
        references = self._references(contexts)
        results: list[VerifierScore | None] = [None] * len(waveforms)
        todo: list[tuple[int, Checked]] = []
        for i, (waveform, reference) in enumerate(zip(waveforms, references)):
            if isinstance(reference, str):
                results[i] = VerifierScore(None, self.metric, reason=reference)
                continue
            checked = self._check(waveform)
            if checked.audio is None:
                results[i] = worst(self.metric, checked.reason)
            else:
                todo.append((i, checked))
        if todo:
            embeddings = _unit(self.embedder.embed([checked.audio for _, checked in todo]))
            for (i, checked), embedding in zip(todo, embeddings):
                cosine = float(np.clip(np.dot(embedding, references[i]), -1.0, 1.0))
                results[i] = VerifierScore(min(1.0, max(0.0, cosine)), self.metric, raw=cosine, detail=dict(checked.detail))
        return results
