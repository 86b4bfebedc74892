"""The seams between stages: what the search sends to the LM, the codec and the verifiers.

The search is written against the async protocols below. In process they are plain objects
(see `llasa_core.engine`); under Ray Serve they are deployment handles with the same methods.
Everything here is a small picklable dataclass or exception so it crosses process boundaries
unchanged, and imports no model library (the ingress and the gRPC proxy unpickle these).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np


class SessionError(ValueError):
    """An LM call that does not fit the session's state (unknown session, bad parent index)."""


class KVBudgetExhausted(RuntimeError):
    """No room in an LM replica's KV budget for a new session, and its wait queue is full."""


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings of one LM call. Defaults are the Llasa model card's."""

    temperature: float = 0.8
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class GenerateRequest:
    """Ask the LM for new speech tokens of the candidates of one search session.

    The first call of a session passes `parents=None` and gets `num_candidates` fresh
    continuations of `prompt_ids`, the prompt prefilled once. Later calls pass `parents`: for each
    new candidate, the index of the row of the previous call's result it continues. An index may
    repeat (the candidate is forked) or be left out (the candidate is dropped). The LM keeps each
    row's KV cache between calls, so nothing already computed is computed again.
    """

    session_id: str
    prompt_ids: tuple[int, ...]
    num_candidates: int = 1
    parents: tuple[int, ...] | None = None
    max_new_tokens: int | None = None  # this call's chunk; None runs to the end or the length cap
    max_total_tokens: int = 2048  # prompt + generated, the model card's max length
    sampling: SamplingParams = SamplingParams()
    seed: int | None = None


@dataclass(frozen=True)
class Continuation:
    """New speech codes of one candidate row, and whether it emitted SPEECH_GENERATION_END."""

    codes: tuple[int, ...]
    finished: bool
    truncated: bool = False  # stopped by max_total_tokens, not by the end token


@dataclass(frozen=True)
class GenerateResult:
    continuations: tuple[Continuation, ...]
    prefill_tokens: int  # prompt (or recomputed prefix) tokens run through the model
    generated_tokens: int  # tokens sampled, one forward position each
    seconds: float


@dataclass(frozen=True)
class ScoreContext:
    """What a verifier needs to know about the request besides the candidate audio."""

    text: str  # the text the candidate should say (without the reference transcript)
    language: str = "en"
    reference_audio: np.ndarray | None = None  # 16 kHz mono float32 reference voice
    reference_text: str | None = None
    non_speech_tags: bool = False  # `text` marks tags such as [laughs] that are not to be spoken


@dataclass(frozen=True)
class VerifierScore:
    """One verifier's verdict on one candidate.

    `score` is in [0, 1], higher is better, or None when the verifier does not apply to this
    request (e.g. speaker similarity without a reference voice); `reason` says why. `raw` is the
    metric a person reads (WER 0.07, cosine 0.81).
    """

    score: float | None
    metric: str
    raw: float | None = None
    reason: str = ""
    detail: dict = field(default_factory=dict)


class Verifier(Protocol):
    """A batched scorer: plain Python, no Ray. `verifiers/` implements it."""

    name: str

    def score(
        self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]
    ) -> list[VerifierScore]: ...


class LMStage(Protocol):
    async def generate(self, request: GenerateRequest) -> GenerateResult: ...

    async def release(self, session_id: str) -> None: ...


class CodecStage(Protocol):
    async def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]: ...


class VerifierStage(Protocol):
    async def score(
        self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]
    ) -> list[VerifierScore]: ...
