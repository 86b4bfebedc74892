"""Inference-time search over Llasa speech candidates, written once against async stages."""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence

from ..stages import ScoreContext
from . import beam, best_of_n, dvts, prm_orm
from .config import SearchConfig, SearchConfigError
from .result import Candidate, ComputeAccount, SearchResult, StageAccount, StepEvent
from .run import SearchRun, Stages, VerifiersUnavailableError

STRATEGIES = {
    "best_of_n": best_of_n.search,
    "beam": beam.search,
    "dvts": dvts.search,
    "prm_orm": prm_orm.search,
}


async def run_search(
    config: SearchConfig,
    stages: Stages,
    prompt_ids: Sequence[int],
    context: ScoreContext,
    reference_codes: Sequence[int] = (),
    on_step: Callable[[StepEvent], Awaitable[None] | None] | None = None,
) -> SearchResult:
    """Search for the best speech for one prompt; the LM session is released whatever happens."""
    config.check_verifiers(stages.verifiers)
    run = SearchRun(config, stages, prompt_ids, context, reference_codes, on_step)
    try:
        finished = await STRATEGIES[config.strategy](run)
    finally:
        await run.release()
    return run.result(finished)


__all__ = [
    "Candidate", "ComputeAccount", "SearchConfig", "SearchConfigError", "SearchResult", "SearchRun",
    "StageAccount", "Stages", "StepEvent", "VerifiersUnavailableError", "run_search",
]
