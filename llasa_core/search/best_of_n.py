"""Best-of-N: N complete samples in one LM batch, the outcome verifiers pick one."""

from __future__ import annotations

from .result import Candidate
from .run import SearchRun


async def search(run: SearchRun) -> list[Candidate]:
    candidates = await run.start(run.config.n, max_new_tokens=None)
    await run.score_final(candidates)
    await run.report([], candidates)
    return candidates
