"""Partial PRM then ORM, the Llasa paper's strongest setting.

Process verifiers (e.g. speaker similarity) steer a beam search for the first `prm_steps` steps;
then every survivor runs to the end in one LM call, and the outcome verifiers (e.g. WER) choose
among all finished candidates.
"""

from __future__ import annotations

from . import beam
from .result import Candidate
from .run import SearchRun
from .tree import grow


async def search(run: SearchRun) -> list[Candidate]:
    finished, live = await grow(run, beam.select, groups=1, max_selections=run.config.prm_steps)
    if live:
        finished += await run.extend(live, max_new_tokens=None)
    await run.score_final(finished)
    await run.report([], finished)
    return finished
