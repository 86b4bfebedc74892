"""The whole engine in one process: the search over plain objects instead of deployments.

Each codec and verifier adapter runs its blocking model call in a worker thread, one call at a
time per model, so an event loop (a notebook, a test, the Ray Serve orchestrator's fallback) stays
responsive. The LM has its own scheduler thread, which batches concurrent calls token by token.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Mapping, Sequence

import numpy as np

from .codec import Codec
from .lm import TransformersLM
from .search import SearchConfig, SearchResult, Stages, StepEvent, run_search
from .stages import GenerateRequest, GenerateResult, ScoreContext, Verifier, VerifierScore


class _Serialised:
    def __init__(self):
        self._lock = asyncio.Lock()

    async def _call(self, fn, *args):
        async with self._lock:
            return await asyncio.to_thread(fn, *args)


class LocalLM:
    """Hands calls to the LM's scheduler thread: concurrent searches share its forward passes."""

    def __init__(self, lm: TransformersLM):
        self.lm = lm

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        return await asyncio.wrap_future(self.lm.submit(request))

    async def release(self, session_id: str) -> None:
        self.lm.release(session_id)


class LocalCodec(_Serialised):
    def __init__(self, codec: Codec):
        super().__init__()
        self.codec = codec

    async def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return await self._call(self.codec.decode, codes)


class LocalVerifier(_Serialised):
    def __init__(self, verifier: Verifier):
        super().__init__()
        self.verifier = verifier

    async def score(self, waveforms, contexts) -> list[VerifierScore]:
        return await self._call(self.verifier.score, waveforms, contexts)


class LlasaTTS:
    """Text (+ optional reference voice) -> searched speech, in process."""

    def __init__(self, lm: TransformersLM, codec: Codec, verifiers: Mapping[str, Verifier] | None = None):
        self.lm = lm
        self.codec = codec
        self.stages = Stages(
            lm=LocalLM(lm),
            codec=LocalCodec(codec),
            verifiers={name: LocalVerifier(v) for name, v in (verifiers or {}).items()},
            sample_rate=codec.sample_rate,
            samples_per_token=codec.samples_per_token,
        )

    async def synthesize(
        self,
        text: str,
        config: SearchConfig = SearchConfig(),
        reference_audio: np.ndarray | None = None,
        reference_text: str | None = None,
        language: str = "en",
        on_step: Callable[[StepEvent], Awaitable[None] | None] | None = None,
    ) -> SearchResult:
        reference_codes: list[int] = []
        if reference_audio is not None:
            if not reference_text:
                raise ValueError("a reference voice needs its transcript (reference_text)")
            reference_codes = await asyncio.to_thread(self.codec.encode, reference_audio)
        prompt_ids = self.lm.prompt_ids(text, reference_text, reference_codes)
        context = ScoreContext(
            text=text, language=language, reference_audio=reference_audio, reference_text=reference_text
        )
        return await run_search(config, self.stages, prompt_ids, context, reference_codes, on_step)
