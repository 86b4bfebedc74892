"""One score from several differently built models of one kind (e.g. Whisper and pocketsphinx).

A search drifts toward what its verifier likes, including that model's own mistakes; two models
that err differently are harder to please by accident. Combination per candidate, over the
members that scored it:
- `mean`: the mean member score; `raw` the mean raw metric.
- `min`: the worst member score (a candidate must satisfy every model); `raw` that member's.
A member that does not apply (score None) is left out; if none applies the ensemble does not
either. `detail["members"]` holds each member's score, raw metric and detail (e.g. transcript).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from llasa_core.stages import ScoreContext, VerifierScore
from verifiers.inputs import check_batch

Combine = Literal["mean", "min"]


class EnsembleVerifier:
    def __init__(self, members: dict[str, object], name: str, combine: Combine = "mean"):
        if len(members) < 2:
            raise ValueError(f"ensemble {name!r} needs at least two members, got {len(members)}")
        if combine not in ("mean", "min"):
            raise ValueError(f"ensemble {name!r}: combine must be 'mean' or 'min', got {combine!r}")
        self.members = members
        self.name = name
        self.combine = combine

    def score(self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> list[VerifierScore]:
        check_batch(waveforms, contexts)
        verdicts = {name: member.score(waveforms, contexts) for name, member in self.members.items()}
        return [self._combine({name: scores[i] for name, scores in verdicts.items()}) for i in range(len(waveforms))]

    def _combine(self, verdicts: dict[str, VerifierScore]) -> VerifierScore:
        metric = next(iter(verdicts.values())).metric
        members = {name: {"score": v.score, "raw": v.raw, **({"reason": v.reason} if v.reason else {}), **v.detail}
                   for name, v in verdicts.items()}
        scored = {name: v for name, v in verdicts.items() if v.score is not None}
        reasons = "; ".join(f"{name}: {v.reason}" for name, v in verdicts.items() if v.reason)
        if not scored:
            return VerifierScore(None, metric, reason=reasons, detail={"members": members})
        if self.combine == "min":
            worst = min(scored.values(), key=lambda v: v.score)
            score, raw = worst.score, worst.raw
        else:
            score = float(np.mean([v.score for v in scored.values()]))
            raws = [v.raw for v in scored.values() if v.raw is not None]
            raw = float(np.mean(raws)) if raws else None
        return VerifierScore(score, metric, raw=raw, reason=reasons, detail={"members": members})
