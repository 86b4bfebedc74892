"""Llasa LM sampling with transformers, step by step, keeping every candidate's KV cache.

A search session starts with one prompt: it is prefilled once, its cache is broadcast to N rows
and N continuations are sampled as one batch. Later calls name, for each new candidate, the row
it continues; the cache rows are gathered in that order (a row named twice is forked), and only
the one pending token per row is run before sampling resumes. The token account of every call
therefore shows exactly what was computed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .prompt import PromptBuilder
from .stages import Continuation, GenerateRequest, GenerateResult, SamplingParams


class SessionError(ValueError):
    """A call that does not fit the session's state (unknown session, bad parent index)."""


# Released session ids remembered so that a start already under way cannot register one again.
_RELEASED_IDS_KEPT = 4096


@dataclass
class _Session:
    cache: DynamicCache
    tokens: torch.Tensor  # (live rows, length): prompt + generated, incl. the pending token
    pending: torch.Tensor  # (live rows,): sampled but not yet run through the model
    live_row_of_result: list[int | None]  # previous result's row -> live row (None: finished)
    generator: torch.Generator
    last_used: float  # time.monotonic() at its start and at the end of each call


def _processors(params: SamplingParams) -> LogitsProcessorList:
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature > 0 and params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k > 0:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    return processors


class TransformersLM:
    """A Llasa checkpoint (hub id or local path) sampled with plain transformers."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "float32", max_sessions: int = 32,
                 session_idle_seconds: float = 300.0):
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.prompt_builder = PromptBuilder.from_pretrained(model, self.tokenizer)
        self.vocab = self.prompt_builder.vocab
        self.max_sessions = max_sessions
        # A session whose release never arrives (its release went to another replica after the
        # replica set changed, or its orchestrator died) is dropped after this long unused.
        self.session_idle_seconds = session_idle_seconds
        self.sessions_expired = 0
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        # Session ids are never reused: a released id stays refused. release() runs on the event
        # loop while a start may be prefilling in a worker thread; the lock orders the two.
        self._released: OrderedDict[str, None] = OrderedDict()
        self._registry_lock = threading.Lock()
        # Positions run through the model so far (prefill + continue + sample), for stage counters.
        self.tokens_computed = 0
        # After SPEECH_GENERATION_START only speech tokens and the end token may follow.
        vocab_size = self.model.get_output_embeddings().weight.shape[0]
        self._blocked = torch.ones(vocab_size, dtype=torch.bool, device=self.device)
        self._blocked[list(self.vocab.allowed_output_ids())] = False
        self._blocked[self.vocab.speech_end_id] = False

    def prompt_ids(self, text: str, reference_text: str | None = None, reference_codes=()) -> list[int]:
        return self.prompt_builder(text, reference_text, reference_codes)

    def release(self, session_id: str) -> None:
        """Forget a session. A call of that session still running in another thread stops at its
        next token, and a start of it still prefilling never registers it (a cancelled search
        releases its session to stop the work it started, even work that has not begun)."""
        with self._registry_lock:
            self._sessions.pop(session_id, None)
            self._released[session_id] = None
            while len(self._released) > _RELEASED_IDS_KEPT:
                self._released.popitem(last=False)

    @property
    def live_sessions(self) -> int:
        return len(self._sessions)

    @torch.inference_mode()
    def generate(self, request: GenerateRequest) -> GenerateResult:
        """One call of a session. Calls are serialised by the caller (LocalLM), so no session is
        in the middle of a call while idle ones are expired here."""
        started = time.perf_counter()
        self._expire_idle()
        if request.parents is None:
            session, logits, prefilled = self._start(request)
        else:
            session, logits = self._continue(request)
            prefilled = 0
        continuations, generated = self._sample_chunk(session, logits, request)
        session.last_used = time.monotonic()
        return GenerateResult(
            continuations=tuple(continuations),
            prefill_tokens=prefilled,
            generated_tokens=generated,
            seconds=time.perf_counter() - started,
        )

    def _expire_idle(self) -> None:
        deadline = time.monotonic() - self.session_idle_seconds
        with self._registry_lock:
            idle = [sid for sid, session in self._sessions.items() if session.last_used < deadline]
            for sid in idle:
                del self._sessions[sid]
        self.sessions_expired += len(idle)

    def _start(self, request: GenerateRequest) -> tuple[_Session, torch.Tensor, int]:
        if request.num_candidates < 1:
            raise SessionError("num_candidates must be at least 1")
        if len(request.prompt_ids) >= request.max_total_tokens:
            raise SessionError(
                f"the prompt has {len(request.prompt_ids)} tokens, at or over max_total_tokens "
                f"{request.max_total_tokens}: shorten the text or the reference voice"
            )
        prompt = torch.tensor([request.prompt_ids], device=self.device)
        cache = DynamicCache()
        logits = self.model(input_ids=prompt, past_key_values=cache).logits[:, -1]
        self.tokens_computed += prompt.shape[1]
        rows = torch.zeros(request.num_candidates, dtype=torch.long, device=self.device)
        cache.reorder_cache(rows)  # broadcast the one prefilled prompt to N rows
        generator = torch.Generator(device=self.device)
        if request.seed is None:
            generator.seed()
        else:
            generator.manual_seed(request.seed)
        session = _Session(
            cache=cache,
            tokens=prompt.expand(request.num_candidates, -1).clone(),
            pending=torch.empty(0, dtype=torch.long, device=self.device),
            live_row_of_result=[],
            generator=generator,
            last_used=time.monotonic(),
        )
        with self._registry_lock:
            if request.session_id in self._released:
                raise SessionError(f"session {request.session_id!r} was released before it started")
            self._sessions[request.session_id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session, logits.expand(request.num_candidates, -1), prompt.shape[1]

    def _continue(self, request: GenerateRequest) -> tuple[_Session, torch.Tensor]:
        session = self._sessions.get(request.session_id)
        if session is None:
            raise SessionError(
                f"unknown or expired session {request.session_id!r}: start it with parents=None"
            )
        self._sessions.move_to_end(request.session_id)
        live_rows = []
        for parent in request.parents:
            if not 0 <= parent < len(session.live_row_of_result):
                raise SessionError(f"parent {parent} is not a row of the previous result")
            row = session.live_row_of_result[parent]
            if row is None:
                raise SessionError(f"parent {parent} already finished and cannot be continued")
            live_rows.append(row)
        if not live_rows:
            raise SessionError("parents is empty: nothing to continue")
        index = torch.tensor(live_rows, device=self.device)
        session.cache.reorder_cache(index)
        session.tokens = session.tokens[index]
        pending = session.pending[index]
        logits = self.model(input_ids=pending[:, None], past_key_values=session.cache).logits[:, -1]
        self.tokens_computed += len(live_rows)
        return session, logits

    def _sample_chunk(
        self, session: _Session, logits: torch.Tensor, request: GenerateRequest
    ) -> tuple[list[Continuation], int]:
        """Sample up to max_new_tokens per row; finished rows leave the batch at once."""
        processors = _processors(request.sampling)
        rows = session.tokens.shape[0]
        new_codes: list[list[int]] = [[] for _ in range(rows)]
        finished = [False] * rows
        truncated = [False] * rows
        live = list(range(rows))  # result rows still in the batch, in cache order
        budget = request.max_new_tokens or request.max_total_tokens
        generated = 0
        for step in range(budget):
            if self._sessions.get(request.session_id) is not session:
                raise SessionError(f"session {request.session_id!r} was released while it was generating")
            if step > 0:
                logits = self.model(input_ids=session.pending[:, None], past_key_values=session.cache).logits[:, -1]
                self.tokens_computed += len(live)
            logits = logits.float().masked_fill(self._blocked, float("-inf"))
            scores = processors(session.tokens, logits)
            if request.sampling.temperature <= 0:
                next_ids = scores.argmax(dim=-1)
            else:
                probs = torch.softmax(scores, dim=-1)
                next_ids = torch.multinomial(probs, 1, generator=session.generator)[:, 0]
            generated += len(live)
            session.tokens = torch.cat([session.tokens, next_ids[:, None]], dim=1)
            session.pending = next_ids
            at_cap = session.tokens.shape[1] >= request.max_total_tokens
            keep = []
            for i, (row, token) in enumerate(zip(live, next_ids.tolist())):
                if token == self.vocab.speech_end_id:
                    finished[row] = True
                else:
                    new_codes[row].append(token - self.vocab.first_speech_id)
                    if at_cap:
                        finished[row] = truncated[row] = True
                    else:
                        keep.append(i)
            if len(keep) < len(live):
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                session.cache.batch_select_indices(index)
                session.tokens = session.tokens[index]
                session.pending = session.pending[index]
                live = [live[i] for i in keep]
            if not live:
                break
        session.live_row_of_result = [None] * rows
        for cache_row, row in enumerate(live):
            session.live_row_of_result[row] = cache_row
        continuations = [
            Continuation(codes=tuple(codes), finished=done, truncated=cut)
            for codes, done, cut in zip(new_codes, finished, truncated)
        ]
        return continuations, generated
