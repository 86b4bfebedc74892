"""What a benchmark talks to: the in-process engine or a running service over gRPC.

Both answer `synthesize(...) -> Synthesis`, the chosen audio and the compute the search spent,
so a sweep runs the same way against either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from llasa_core.search import SearchConfig


@dataclass(frozen=True)
class Synthesis:
    audio: np.ndarray
    lm_prefill_tokens: int
    lm_generated_tokens: int
    codec_audio_seconds: float
    verifier_seconds: float
    wall_seconds: float
    candidates: int


class Engine(Protocol):
    verifier_names: list[str]

    async def synthesize(
        self, text: str, config: SearchConfig, reference_audio: np.ndarray | None, reference_text: str | None
    ) -> Synthesis: ...


class InProcessEngine:
    """LlasaTTS with verifiers from the registry, all in this process."""

    def __init__(self, model: str, codec: str, verifier_configs: list[dict]):
        from llasa_core.codec import load_codec
        from llasa_core.engine import LlasaTTS
        from llasa_core.lm import TransformersLM
        from verifiers import build_verifiers

        verifiers = build_verifiers(verifier_configs)
        self.verifier_names = list(verifiers)
        self.engine = LlasaTTS(TransformersLM(model), load_codec(codec), verifiers)

    async def synthesize(self, text, config, reference_audio=None, reference_text=None) -> Synthesis:
        result = await self.engine.synthesize(text, config, reference_audio, reference_text)
        account = result.account
        return Synthesis(
            audio=result.chosen.audio,
            lm_prefill_tokens=account.lm_prefill_tokens,
            lm_generated_tokens=account.lm_generated_tokens,
            codec_audio_seconds=account.codec.audio_seconds,
            verifier_seconds=sum(v.seconds for v in account.verifiers.values()),
            wall_seconds=account.wall_seconds,
            candidates=len(result.candidates),
        )


class GrpcEngine:
    """A running service: the same search, asked for over gRPC."""

    def __init__(self, target: str):
        from llasa_client import TTSClient

        self.client = TTSClient(target)
        self.verifier_names = [v.name for v in self.client.describe().verifiers]

    async def synthesize(self, text, config, reference_audio=None, reference_text=None) -> Synthesis:
        import asyncio

        from llasa_client import SynthesisOptions
        from llasa_core.audio import read_audio, write_wav

        options = SynthesisOptions(
            strategy=config.strategy, n=config.n, beam_width=config.beam_width, step_tokens=config.step_tokens,
            prm_steps=config.prm_steps, aggregation=config.aggregation,
            process_verifiers=dict(config.process_verifiers), outcome_verifiers=dict(config.outcome_verifiers),
            max_speech_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
            top_k=config.top_k, repetition_penalty=config.repetition_penalty, seed=config.seed,
            reference_audio=write_wav(reference_audio) if reference_audio is not None else None,
            reference_text=reference_text,
        )
        response = await asyncio.to_thread(self.client.synthesize, text, options, 600)
        audio = read_audio(response.audio)
        account = response.account
        return Synthesis(
            audio=audio,
            lm_prefill_tokens=account.lm_prefill_tokens,
            lm_generated_tokens=account.lm_generated_tokens,
            codec_audio_seconds=account.codec.audio_seconds,
            verifier_seconds=sum(v.seconds for v in account.verifiers.values()),
            wall_seconds=response.timings.total_seconds,
            candidates=len(response.candidates),
        )
