"""Beam search: keep the best N/M live candidates overall, expand each M ways."""

from __future__ import annotations

from typing import Sequence

from .result import Candidate
from .run import SearchRun
from .tree import grow, top


def select(run: SearchRun, live: Sequence[Candidate]) -> list[Candidate]:
    return top(run, live, run.config.n // run.config.beam_width)


async def search(run: SearchRun) -> list[Candidate]:
    finished, _ = await grow(run, select, groups=1)
    await run.score_final(finished)
    return finished
