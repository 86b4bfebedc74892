"""One validated object that says how a request spends its compute."""

from __future__ import annotations

from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..stages import SamplingParams

Strategy = Literal["best_of_n", "beam", "dvts", "prm_orm"]
Aggregation = Literal["last", "min", "mean", "prod"]


class SearchConfigError(ValueError):
    """A search configuration that cannot run; the message says what to change."""


class SearchConfig(BaseModel):
    """How to search: strategy, budget, verifiers and sampling.

    n is the number of candidates alive at once (the budget). The tree searches keep n / beam_width
    candidates at each step and expand each beam_width ways: `beam` keeps the best n / beam_width
    overall, `dvts` keeps the best of each of its n / beam_width subtrees, `prm_orm` runs `beam`
    for `prm_steps` steps and lets the survivors finish before the outcome verifiers choose.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = "best_of_n"
    n: int = Field(1, ge=1, description="candidates alive at once")
    beam_width: int = Field(1, ge=1, description="M: children per kept candidate")
    step_tokens: int = Field(50, ge=1, description="speech tokens per search step (50 = 1 s)")
    prm_steps: int = Field(2, ge=1, description="steps steered by process verifiers (prm_orm)")
    aggregation: Aggregation = "last"
    process_verifiers: dict[str, float] = Field(default_factory=dict)
    outcome_verifiers: dict[str, float] = Field(default_factory=dict)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    max_total_tokens: int = Field(2048, ge=2, description="prompt + speech tokens, the model's max length")
    max_new_tokens: int | None = Field(None, ge=1, description="speech tokens per candidate at most")
    seed: int | None = None
    return_scores: bool = Field(
        False, description="score even when there is nothing to choose (n = 1); otherwise n = 1 runs no verifier")
    return_candidate_audio: bool = Field(
        False, description="keep every finished candidate's audio in the result, not only the chosen one's")
    allow_partial_verifiers: bool = Field(
        False, description="a verifier that fails drops out (the others' weights renormalised) instead of failing "
                           "the search; SearchResult.verifiers_failed says which and why")

    @model_validator(mode="after")
    def _check_combination(self) -> "SearchConfig":
        for role, weights in (("process", self.process_verifiers), ("outcome", self.outcome_verifiers)):
            bad = {name: w for name, w in weights.items() if not w > 0}
            if bad:
                raise ValueError(f"{role} verifier weights must be positive, got {bad}")
        if self.strategy == "best_of_n":
            if self.n > 1 and not (self.outcome_verifiers or self.process_verifiers):
                raise ValueError("best_of_n with n > 1 needs a verifier to choose among the candidates")
            return self
        if self.n % self.beam_width:
            raise ValueError(
                f"n ({self.n}) must be a multiple of beam_width ({self.beam_width}) for {self.strategy}: "
                f"it keeps n / beam_width candidates and expands each beam_width ways"
            )
        if not self.process_verifiers:
            raise ValueError(f"{self.strategy} needs at least one process verifier to rank partial candidates")
        if self.strategy == "prm_orm" and not self.outcome_verifiers:
            raise ValueError("prm_orm needs at least one outcome verifier to choose the final answer")
        return self

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.top_k, self.repetition_penalty)

    @property
    def runs_verifiers(self) -> bool:
        """n = 1 has nothing to choose: its verifiers run only when the caller asks for the scores."""
        return self.n > 1 or self.return_scores

    @property
    def final_verifiers(self) -> dict[str, float]:
        """Who picks the answer: the outcome verifiers, else the process verifiers."""
        return self.outcome_verifiers or self.process_verifiers

    def check_verifiers(self, available: Iterable[str]) -> None:
        available = sorted(available)
        unknown = sorted((set(self.process_verifiers) | set(self.outcome_verifiers)) - set(available))
        if unknown:
            raise SearchConfigError(
                f"unknown verifier(s) {unknown}; this server has {available or 'no verifiers'}"
            )
