"""The LM stage on vLLM's async engine (`lm.backend: vllm`): for GPUs.

vLLM keeps no per-search state here: every step sends each candidate's whole token prefix, and
automatic prefix caching makes the shared part (the prompt, and the history of forked rows) free.
The stage remembers only each session's token ids (a few KB, host memory) so that the search's
contract (`GenerateRequest.parents` naming rows of the previous result) is unchanged; a parent
named k times becomes one vLLM request with n = k. Output is speech-only through
`allowed_token_ids`, stops at <|SPEECH_GENERATION_END|>, and each request has its own seed.

`import vllm` happens only when an engine is built, so this module (and its request building,
which the tests check) loads where vLLM is not installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .lm_scheduler import _RELEASED_IDS_KEPT
from .prompt import LlasaVocab
from .stages import Continuation, GenerateRequest, GenerateResult, SessionError


@dataclass(frozen=True)
class VLLMStep:
    """One vLLM request: a prefix, how many samples of it, and the sampling params' arguments."""

    prompt_token_ids: list[int]
    sampling: dict
    children: list[int]  # result rows that these n samples fill, in order


def sub_seed(seed: int | None, session_id: str, call: int, parent: int) -> int | None:
    """A seed per vLLM request, fixed by the search's seed and the request's place in the search."""
    if seed is None:
        return None
    digest = hashlib.blake2b(f"{seed}/{session_id}/{call}/{parent}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class _Session:
    rows: list[list[int] | None]  # token ids (prompt + generated) of each row of the last result
    calls: int = 0
    last_used: float = field(default_factory=time.monotonic)


class VLLMRequests:
    """Builds the vLLM requests of one LM call, and reads their outputs back: no vLLM needed."""

    def __init__(self, vocab: LlasaVocab):
        self.vocab = vocab
        self.allowed = [*vocab.allowed_output_ids(), vocab.speech_end_id]

    def sampling(self, request: GenerateRequest, prefix_length: int, n: int, seed: int | None) -> dict:
        params = request.sampling
        budget = request.max_total_tokens - prefix_length
        if request.max_new_tokens is not None:
            budget = min(budget, request.max_new_tokens)
        return dict(
            n=n, seed=seed, max_tokens=budget,
            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k if params.top_k > 0 else -1,
            repetition_penalty=params.repetition_penalty,
            allowed_token_ids=self.allowed, stop_token_ids=[self.vocab.speech_end_id],
            detokenize=False, skip_special_tokens=False,
        )

    def steps(self, request: GenerateRequest, rows: list[list[int] | None], call: int) -> list[VLLMStep]:
        """Requests of one call: the prompt n times for a start, else each named parent's prefix,
        as many times as it is named."""
        if request.parents is None:
            prompt = list(request.prompt_ids)
            return [VLLMStep(prompt, self.sampling(request, len(prompt), request.num_candidates,
                                                   sub_seed(request.seed, request.session_id, call, -1)),
                             list(range(request.num_candidates)))]
        children: dict[int, list[int]] = {}
        for child, parent in enumerate(request.parents):
            if not 0 <= parent < len(rows):
                raise SessionError(f"parent {parent} is not a row of the previous result")
            if rows[parent] is None:
                raise SessionError(f"parent {parent} already finished and cannot be continued")
            children.setdefault(parent, []).append(child)
        if not children:
            raise SessionError("parents is empty: nothing to continue")
        return [
            VLLMStep(rows[parent], self.sampling(request, len(rows[parent]), len(kids),
                                                 sub_seed(request.seed, request.session_id, call, parent)), kids)
            for parent, kids in children.items()
        ]

    def continuation(self, prefix: list[int], token_ids, stopped: bool,
                     max_total_tokens: int) -> tuple[Continuation, list[int] | None]:
        """One sample's output (`stopped`: vLLM's finish_reason is "stop") as a Continuation, and
        its row's tokens for the next step (None once finished). vLLM keeps the stop token in the
        output; it is no speech code."""
        tokens = list(token_ids)
        finished = stopped or (bool(tokens) and tokens[-1] == self.vocab.speech_end_id)
        if tokens and tokens[-1] == self.vocab.speech_end_id:
            tokens.pop()
        truncated = not finished and len(prefix) + len(tokens) >= max_total_tokens
        done = finished or truncated
        codes = tuple(self.vocab.ids_to_codes(tokens))
        return Continuation(codes=codes, finished=done, truncated=truncated), None if done else prefix + tokens


class VLLMLM:
    """The LM stage on `vllm.AsyncLLMEngine` with automatic prefix caching."""

    def __init__(self, model: str, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.5,
                 max_model_len: int = 2048, session_idle_seconds: float = 300.0, seed: int = 0):
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine  # the [vllm] extra

        from .prompt import PromptBuilder

        tokenizer = AutoTokenizer.from_pretrained(model)
        self.prompt_builder = PromptBuilder.from_pretrained(model, tokenizer)
        self.vocab = self.prompt_builder.vocab
        self.requests = VLLMRequests(self.vocab)
        self.engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(
            model=model, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_prefix_caching=True, seed=seed,
        ))
        self.session_idle_seconds = session_idle_seconds
        self._sessions: dict[str, _Session] = {}
        self._released: OrderedDict[str, None] = OrderedDict()
        self.tokens_computed = 0
        self.sessions_expired = 0
        self._next_request = 0

    def prompt_ids(self, text: str, reference_text: str | None = None, reference_codes=()) -> list[int]:
        return self.prompt_builder(text, reference_text, reference_codes)

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        from vllm import SamplingParams

        started = time.perf_counter()
        self._expire_idle()
        if request.parents is None:
            if request.session_id in self._released:
                raise SessionError(f"session {request.session_id!r} was released before it started")
            if len(request.prompt_ids) >= request.max_total_tokens:
                raise SessionError(f"the prompt has {len(request.prompt_ids)} tokens, at or over max_total_tokens "
                                   f"{request.max_total_tokens}: shorten the text or the reference voice")
            session = _Session(rows=[])
        else:
            session = self._sessions.get(request.session_id)
            if session is None:
                raise SessionError(f"unknown or expired session {request.session_id!r}: start it with parents=None")
        steps = self.requests.steps(request, session.rows, session.calls)
        session.calls += 1
        outputs = await asyncio.gather(*(self._run(step, SamplingParams(**step.sampling)) for step in steps))
        rows: list[list[int] | None] = [None] * len(request.parents or range(request.num_candidates))
        continuations: list[Continuation | None] = [None] * len(rows)
        generated = 0
        for step, output in zip(steps, outputs):
            for child, sample in zip(step.children, output.outputs):
                continuations[child], rows[child] = self.requests.continuation(
                    step.prompt_token_ids, sample.token_ids, sample.finish_reason == "stop", request.max_total_tokens)
                generated += len(sample.token_ids)
        if request.session_id in self._released:
            raise SessionError(f"session {request.session_id!r} was released while it was generating")
        session.rows, session.last_used = rows, time.monotonic()
        self._sessions[request.session_id] = session
        prefill = len(request.prompt_ids) if request.parents is None else 0
        self.tokens_computed += prefill + generated
        return GenerateResult(continuations=tuple(continuations), prefill_tokens=prefill, generated_tokens=generated,
                              seconds=time.perf_counter() - started)

    async def _run(self, step: VLLMStep, params):
        self._next_request += 1
        final = None
        async for output in self.engine.generate({"prompt_token_ids": step.prompt_token_ids}, params,
                                                 request_id=f"llasa-{self._next_request}"):
            final = output
        return final

    def release(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        self._released[session_id] = None
        while len(self._released) > _RELEASED_IDS_KEPT:
            self._released.popitem(last=False)

    def _expire_idle(self) -> None:
        deadline = time.monotonic() - self.session_idle_seconds
        idle = [sid for sid, s in self._sessions.items() if s.last_used < deadline]
        for sid in idle:
            del self._sessions[sid]
        self.sessions_expired += len(idle)

    @property
    def live_sessions(self) -> int:
        return len(self._sessions)

    def stats(self) -> dict:
        return dict(tokens=self.tokens_computed, sessions=self.live_sessions, sessions_expired=self.sessions_expired)
