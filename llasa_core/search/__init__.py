"""Inference-time search over Llasa speech candidates, written once against async stages."""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence

import numpy as np

from ..stages import ScoreContext
from . import beam, best_of_n, dvts, prm_orm
from .config import SearchConfig, SearchConfigError
from .result import Candidate, ComputeAccount, SearchResult, StageAccount, StepCandidate, StepEvent
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
    on_audio: Callable[[np.ndarray], Awaitable[None] | None] | None = None,
) -> SearchResult:
    """Search for the best speech for one prompt; the LM session is released whatever happens.

    With `on_audio`, the chosen audio is handed over in chunks as soon as it is fixed (n = 1: each
    step; tree searches: the committed prefix all candidates share; best-of-N: after the choice);
    the chunks joined equal `result.chosen.audio` sample for sample."""
    config.check_verifiers(stages.verifiers)
    run = SearchRun(config, stages, prompt_ids, context, reference_codes, on_step, on_audio)
    try:
        finished = await STRATEGIES[config.strategy](run)
    finally:
        await run.release()
    result = run.result(finished)
    await run.flush(result.chosen)
    return result


__all__ = [
    "Candidate", "ComputeAccount", "SearchConfig", "SearchConfigError", "SearchResult", "SearchRun",
    "StageAccount", "Stages", "StepCandidate", "StepEvent", "VerifiersUnavailableError", "run_search",
]
