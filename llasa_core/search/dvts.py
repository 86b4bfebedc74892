"""Diverse verifier tree search: N/M independent subtrees of width M, each greedy on its own.

Every subtree keeps only its own best candidate and expands it M ways, so one strong early
candidate cannot take over the whole budget: diversity by construction.
"""

from __future__ import annotations

from itertools import groupby
from typing import Sequence

from .result import Candidate
from .run import SearchRun
from .tree import grow, top


def select(run: SearchRun, live: Sequence[Candidate]) -> list[Candidate]:
    by_group = groupby(sorted(live, key=lambda c: c.group), key=lambda c: c.group)
    return [top(run, list(members), 1)[0] for _, members in by_group]


async def search(run: SearchRun) -> list[Candidate]:
    finished, _ = await grow(run, select, groups=run.config.n // run.config.beam_width)
    await run.score_final(finished)
    return finished
