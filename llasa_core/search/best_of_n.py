"""Best-of-N: N complete samples in one LM batch, the outcome verifiers pick one.

Streaming a single sample (n = 1 with an audio listener), it is generated `step_tokens` at a
time and each step's audio is handed over as soon as it is decoded."""

from __future__ import annotations

from .result import Candidate
from .run import SearchRun


async def search(run: SearchRun) -> list[Candidate]:
    if run.config.n == 1 and run.on_audio is not None:
        return await _stream_one(run)
    candidates = await run.start(run.config.n, max_new_tokens=None)
    await run.score_final(candidates)
    await run.report([], candidates)
    return candidates


FIRST_AUDIO_TOKENS = 10  # streaming n = 1: the first step's audio that is settled at once (0.2 s)


async def _stream_one(run: SearchRun) -> list[Candidate]:
    """The first step is short (the redone codes plus FIRST_AUDIO_TOKENS), so audio starts early."""
    first = min(run.config.step_tokens, run.stages.decode_redo_tokens + FIRST_AUDIO_TOKENS)
    candidates = await run.start(1, max_new_tokens=first)
    while not candidates[0].finished:
        await run.decode(candidates)
        await run.report(candidates, [])
        candidates = await run.extend(candidates, max_new_tokens=run.config.step_tokens)
    await run.score_final(candidates)
    await run.report([], candidates)
    return candidates
