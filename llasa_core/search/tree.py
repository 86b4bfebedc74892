"""The step loop shared by the tree searches: sample a chunk, score, keep, expand.

Each step every live candidate gets `step_tokens` more speech tokens; the process verifiers
score the live ones and `select` decides which survive and how often each is expanded. Finished
candidates leave the tree and wait for the final choice.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .result import Candidate
from .run import SearchRun

Select = Callable[[SearchRun, Sequence[Candidate]], list[Candidate]]


async def grow(
    run: SearchRun, select: Select, groups: int, max_selections: int | None = None
) -> tuple[list[Candidate], list[Candidate]]:
    """Run the tree until every candidate finished or `max_selections` rounds were steered.

    Returns (finished, live). The first chunk's N candidates are split into `groups` equal
    subtrees (dvts); children inherit their parent's group.
    """
    config = run.config
    candidates = await run.start(config.n, max_new_tokens=config.step_tokens)
    per_group = config.n // groups
    for i, candidate in enumerate(candidates):
        candidate.group = i // per_group
    finished: list[Candidate] = []
    selections = 0
    while True:
        finished += [c for c in candidates if c.finished]
        live = [c for c in candidates if not c.finished]
        if not live or selections == max_selections:
            return finished, live
        await run.score_process(live)
        kept = select(run, live)
        await run.report(live, finished, kept)
        parents = [p for p in kept for _ in range(config.beam_width)]
        candidates = await run.extend(parents, max_new_tokens=config.step_tokens)
        selections += 1


def top(run: SearchRun, candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The k best by aggregated process score (ties: the earliest sampled)."""
    return sorted(candidates, key=lambda c: (-run.process_score(c), c.id))[:k]
