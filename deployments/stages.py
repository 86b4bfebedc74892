"""One deployment per stage, each a thin wrapper around the plain class in llasa_core/verifiers.

The blocking model call of each replica runs in a worker thread, one at a time (the adapters of
`llasa_core.engine`), so the replica's event loop keeps accepting and batching requests.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Sequence

import numpy as np
import torch
from ray import serve
from ray.serve.config import RequestRouterConfig

from llasa_core.engine import LocalCodec, LocalLM, LocalVerifier
from llasa_core.stages import GenerateRequest, GenerateResult, ScoreContext, VerifierScore
from verifiers.registry import VerifierConfig, build_verifier

from .config import BatchArgs, CodecArgs, LMArgs, resolve_model
from .request_context import DeadlineExceeded
from .session_router import SessionPinRouter

# A search's steps must reach the replica that holds its KV cache: the orchestrator tags every
# call with the search's session id, and the router pins a session to the replica of its first call
# (the one with the most free KV budget, as the replicas last reported it).
SESSION_AFFINITY = RequestRouterConfig(request_router_class=SessionPinRouter, request_routing_stats_period_s=2.0)


@serve.deployment(
    name="LMSampler",
    ray_actor_options={"num_cpus": 0.25},
    max_ongoing_requests=16,
    request_router_config=SESSION_AFFINITY,
)
class LMSampler:
    """Samples speech tokens for search sessions and keeps each session's KV cache."""

    def __init__(self, args: LMArgs, tiny_cache_dir: str, torch_threads: int):
        torch.set_num_threads(torch_threads)
        path = resolve_model(args.model, "llasa", tiny_cache_dir)
        if args.backend == "vllm":
            from llasa_core.lm_vllm import VLLMLM

            self.model = self.lm = VLLMLM(path, args.dtype, args.gpu_memory_utilization,
                                          session_idle_seconds=args.session_idle_seconds)
        else:
            from llasa_core.lm import TransformersLM

            self.model = TransformersLM(path, args.device, args.dtype, kv_budget_tokens=args.kv_budget_tokens,
                                        max_waiting_sessions=args.max_waiting_sessions,
                                        session_idle_seconds=args.session_idle_seconds, quantize=args.quantize,
                                        compile_one_row=args.compile_one_row)
            self.lm = LocalLM(self.model)
        self.calls = self.items = 0

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        self.calls += 1
        self.items += request.num_candidates
        try:
            return await self.lm.generate(request)
        except asyncio.CancelledError:
            # The caller gave up (client deadline, disconnect, request timeout): forget the
            # session now, so the scheduler drops its rows at the next token instead of finishing.
            self.model.release(request.session_id)
            raise

    async def release(self, session_id: str) -> None:
        self.model.release(session_id)  # queued for the scheduler thread: returns at once

    def counters(self) -> dict:
        """Work done by this replica since it started: a cheap probe for tests and operators."""
        return _counters(calls=self.calls, items=self.items, **self.model.stats())

    def record_routing_stats(self) -> dict:
        """Polled by Serve for the router: a new session goes to the replica with the most free KV."""
        return {"kv_free_tokens": self.model.stats().get("kv_free_tokens", 0)}


@serve.deployment(name="CodecDecoder", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32)
class CodecDecoder:
    """X-codec2 decode, batched across concurrent searches; encode for reference voices."""

    def __init__(self, args: CodecArgs, tiny_cache_dir: str, torch_threads: int):
        from llasa_core.codec import load_codec

        torch.set_num_threads(torch_threads)
        codec = load_codec(resolve_model(args.model, "xcodec2", tiny_cache_dir), args.device)
        self.codec = LocalCodec(codec)
        self.samples_per_token = codec.samples_per_token
        _configure_batch(self._decode_batched, args.batch)
        self.calls = self.items = self.tokens = self.expired = 0

    async def decode(self, codes: Sequence[Sequence[int]], deadline: float | None = None) -> list[np.ndarray]:
        """`deadline` (time.time() seconds): past it, the call is dropped at the next batch, unrun."""
        waves = await self._decode_batched((list(codes), deadline))
        if isinstance(waves, DeadlineExceeded):
            raise waves
        return waves

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _decode_batched(self, calls: list[tuple[list[Sequence[int]], float | None]]) -> list:
        now = time.time()
        live = [codes for codes, deadline in calls if deadline is None or deadline > now]
        self.expired += len(calls) - len(live)
        flat = [codes for call in live for codes in call]
        if flat:
            self.calls += 1
            self.items += len(flat)
            self.tokens += sum(len(c) for c in flat)
        waves = iter(_split(await self.codec.decode(flat), live) if flat else [[] for _ in live])
        return [next(waves) if deadline is None or deadline > now else
                DeadlineExceeded("the request's deadline passed before its codes were decoded")
                for _, deadline in calls]

    def counters(self) -> dict:
        return _counters(calls=self.calls, items=self.items, tokens=self.tokens, expired=self.expired)

    async def encode(self, audio: np.ndarray) -> list[int]:
        return await self.codec._call(self.codec.codec.encode, audio)

    def layout(self) -> tuple[int, int]:
        """(sample_rate, samples_per_token) the search needs to account audio seconds."""
        return self.codec.codec.sample_rate, self.samples_per_token


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32)
class VerifierScorer:
    """One configured verifier (instantiated once per verifier, each its own deployment),
    scoring the candidates of concurrent searches as one batch."""

    def __init__(self, config: VerifierConfig, batch: BatchArgs, torch_threads: int):
        torch.set_num_threads(torch_threads)
        self.verifier = LocalVerifier(build_verifier(config))
        _configure_batch(self._score_batched, batch)
        self.calls = self.items = self.expired = 0
        self.audio_samples = 0

    async def score(self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext],
                    deadline: float | None = None) -> list[VerifierScore]:
        """`deadline` (time.time() seconds): past it, the call is dropped at the next batch, unrun."""
        scores = await self._score_batched((list(waveforms), list(contexts), deadline))
        if isinstance(scores, DeadlineExceeded):
            raise scores
        return scores

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _score_batched(self, calls: list[tuple[list, list, float | None]]) -> list:
        now = time.time()
        live = [(waves, contexts) for waves, contexts, deadline in calls if deadline is None or deadline > now]
        self.expired += len(calls) - len(live)
        waves = [w for call_waves, _ in live for w in call_waves]
        contexts = [c for _, call_contexts in live for c in call_contexts]
        scores = iter([])
        if waves:
            self.calls += 1
            self.items += len(waves)
            self.audio_samples += sum(len(w) for w in waves)
            scores = iter(_split(await self.verifier.score(waves, contexts), [call_waves for call_waves, _ in live]))
        return [next(scores) if deadline is None or deadline > now else
                DeadlineExceeded("the request's deadline passed before its audio was scored")
                for _, _, deadline in calls]

    async def word_timestamps(self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> list[list[dict]]:
        """Each word's start and end in each clip, aligned to its context's text (an ASR verifier
        with a faster-whisper model; verifiers.asr.asr_word_timestamps)."""
        from verifiers.asr import asr_word_timestamps

        return await self.verifier._call(asr_word_timestamps, self.verifier.verifier, list(waveforms), list(contexts))

    def counters(self) -> dict:
        return _counters(calls=self.calls, items=self.items, tokens=self.audio_samples, expired=self.expired)


def _counters(**values) -> dict:
    """Counters of one replica: `calls` (model invocations, one per batch), `items` (candidates),
    `tokens` (LM: positions computed; codec: codes decoded; verifier: audio samples scored)."""
    context = serve.get_replica_context()
    return {"replica": context.replica_id.unique_id, "deployment": context.deployment, "pid": os.getpid(), **values}


def _configure_batch(batched_method, batch: BatchArgs) -> None:
    batched_method.set_max_batch_size(batch.max_batch_size)
    batched_method.set_batch_wait_timeout_s(batch.batch_wait_timeout_s)


def _split(flat: list, calls: list[list]) -> list[list]:
    """Cut one batched answer back into one list per caller."""
    out, start = [], 0
    for call in calls:
        out.append(flat[start : start + len(call)])
        start += len(call)
    return out
