"""What a search returns: candidates with their scores, and the compute it spent."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..stages import VerifierScore


@dataclass
class Candidate:
    """One speech candidate: its codes so far and every score it has received."""

    id: int
    codes: list[int]
    group: int = 0  # dvts subtree
    parent: int | None = None
    row: int = 0  # its row in the LM's latest result, to continue it
    finished: bool = False
    truncated: bool = False
    step_scores: list[float] = field(default_factory=list)
    process_scores: dict[str, VerifierScore] = field(default_factory=dict)
    outcome_scores: dict[str, VerifierScore] = field(default_factory=dict)
    final_score: float | None = None
    audio: np.ndarray | None = None  # of codes[:audio_codes]; a fork starts with its parent's
    audio_codes: int = 0


@dataclass
class StageAccount:
    """Calls to one stage as the search saw them: wall seconds include queueing and transport."""

    calls: int = 0
    items: int = 0
    audio_seconds: float = 0.0  # codec: new audio decoded; verifier: audio scored
    seconds: float = 0.0
    context_seconds: float = 0.0  # codec: earlier audio decoded again as left context of the new


@dataclass
class ComputeAccount:
    lm_prefill_tokens: int = 0
    lm_generated_tokens: int = 0
    lm: StageAccount = field(default_factory=StageAccount)
    codec: StageAccount = field(default_factory=StageAccount)
    verifiers: dict[str, StageAccount] = field(default_factory=dict)
    wall_seconds: float = 0.0
    stage_retries: int = 0  # stage calls repeated after a failure (filled by the caller's stage adapters)
    first_audio_seconds: float | None = None  # search start -> first streamed audio (None: not streamed)

    def verifier(self, name: str) -> StageAccount:
        return self.verifiers.setdefault(name, StageAccount())


@dataclass(frozen=True)
class StepCandidate:
    """One candidate as a step left it, to draw the search tree: kept (expanded next step), pruned
    (dropped here) or finished (waits for the final choice)."""

    id: int
    parent: int | None
    group: int
    score: float | None  # aggregated process score; a finished one's final score once it has one
    kept: bool
    finished: bool


@dataclass(frozen=True)
class StepEvent:
    """Progress after a search step, for streaming to the client."""

    step: int
    live: int
    finished: int
    best_score: float | None
    lm_generated_tokens: int
    candidates: tuple[StepCandidate, ...] = ()  # the live ones scored this step and those newly finished


@dataclass
class SearchResult:
    strategy: str
    chosen: Candidate
    candidates: list[Candidate]  # every finished candidate, scored
    account: ComputeAccount
    steps: int
    verifiers_used: list[str] = field(default_factory=list)  # verifiers that answered
    verifiers_failed: dict[str, str] = field(default_factory=dict)  # dropped out: name -> reason
