"""Scores across verifiers (weighted) and across steps (aggregated)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..stages import VerifierScore


def combine(scores: Mapping[str, VerifierScore], weights: Mapping[str, float]) -> float | None:
    """Weighted mean over the verifiers that scored; None when none applied.

    A verifier that does not apply to a request (score None) drops out and the weights of the
    others are renormalised, so e.g. speaker similarity without a reference voice neither helps
    nor hurts.
    """
    total = weight_sum = 0.0
    for name, weight in weights.items():
        verdict = scores.get(name)
        if verdict is not None and verdict.score is not None:
            total += weight * verdict.score
            weight_sum += weight
    return total / weight_sum if weight_sum else None


def aggregate(step_scores: Sequence[float], how: str) -> float:
    """One number for a candidate's history of step scores (empty history: 0)."""
    if not step_scores:
        return 0.0
    if how == "last":
        return step_scores[-1]
    if how == "min":
        return min(step_scores)
    if how == "mean":
        return sum(step_scores) / len(step_scores)
    if how == "prod":
        return math.prod(step_scores)
    raise ValueError(f"unknown aggregation {how!r}; use last, min, mean or prod")
