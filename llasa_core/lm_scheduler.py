"""Iteration-level scheduling of LM calls: one thread per replica owns the model, and at every token
step it runs the pending row of every candidate of every call in flight (any search, prompt or
length) as one forward pass.

Calls join between steps: a start is prefilled once and its N rows join the batch; a continuation
names the rows it continues (forking a row copies its KV once) and they join. Rows leave the
batch as soon as they emit the end token or hit the length cap, and all of a call's rows leave
when its chunk is done; the call's future is then resolved. Each call samples from its own rows'
logits with its own session's generator, so a seeded result does not depend on the batch.

KV memory is admitted by budget: a new session reserves the worst case of its rows
(num_candidates * max_total_tokens); a start that does not fit waits (a bounded number wait), and
beyond that is refused with `KVBudgetExhausted`. A live session is never evicted; a session
unused for `session_idle_seconds` (its release was lost) is expired.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import (
    DynamicCache,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .lm_pool import KVPool, StepCache
from .stages import Continuation, GenerateRequest, GenerateResult, KVBudgetExhausted, SamplingParams, SessionError


# Released session ids remembered so that a start already under way cannot register one again.
_RELEASED_IDS_KEPT = 4096


def _processors(params: SamplingParams) -> LogitsProcessorList:
    """Everything but the temperature, which the sampler applies itself."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.top_k > 0:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    return processors


# Sampling picks a block of logit columns first, then a column inside it: two short cumulative
# sums instead of one over the whole speech vocabulary.
_BLOCK = 256


def compile_for_one_row(step, device: torch.device):
    """`torch.compile` of a decode step of one row, as the scheduler runs it.

    The kv length and the pool's size are symbolic, so one compile serves every such step. On a
    CPU, called where `frozen_weights` holds, the weights become constants of the program, so
    inductor's own C++ GEMM kernels, autotuned against ATen's at compile time, can take each layer:
    an int8 layer's matrix-vector product ran in 7 against 19 us for 384 x 384 (README "CPU
    speed"). `realize_reads_threshold: 1` stores every value read again instead of recomputing it
    where it is read: by default the query's rotary embedding was recomputed for every key
    position inside the attention loop (125 against 72 us a layer at 300 positions).
    """
    options = {"realize_reads_threshold": 1}
    if device.type == "cpu":
        options.update(max_autotune=True, max_autotune_gemm_backends="CPP,ATEN")
    return torch.compile(step, dynamic=True, options=options)


@contextmanager
def frozen_weights(enabled: bool = True):
    """Compiles made in this thread inside the block take the model's weights as constants
    (inductor's freezing: the weights must never change afterwards). Inductor's config patches are
    thread-local, so no other thread's compiles are affected."""
    from torch._inductor import config as inductor_config

    with inductor_config.patch(freezing=enabled):
        yield


@dataclass(eq=False)
class _Row:
    slot: int
    positions: int  # KV positions held; the row's pending token is pool.tokens[slot, positions]
    first_new: int = 0  # buffer index of this call's first sampled token
    read_upto: int = 0  # buffer index of the first sampled token not yet read by the host
    codes: list[int] = field(default_factory=list)
    finished: bool = False
    truncated: bool = False
    call: "_Call | None" = None


@dataclass(eq=False)
class _Session:
    id: str
    generator: torch.Generator
    reserved: int  # KV tokens reserved: rows * max_total_tokens
    rows: list[_Row | None] = field(default_factory=list)  # previous result's row -> row (None: finished)
    last_used: float = field(default_factory=time.monotonic)
    call: "_Call | None" = None


@dataclass(eq=False)
class _Call:
    request: GenerateRequest
    future: Future
    session: _Session
    rows: list[_Row] = field(default_factory=list)  # in result order
    budget: int = 0  # tokens to sample per row in this call
    sampled: int = 0  # tokens sampled per row so far
    layout: int = -1  # the scheduler's layout version that `slots` / `result_rows` were built for
    slots: torch.Tensor | None = None  # slots of the live rows (device)
    result_rows: torch.Tensor | None = None  # their indices in `rows` (device)
    started: float = field(default_factory=time.perf_counter)
    processors: LogitsProcessorList = field(default_factory=LogitsProcessorList)


class LMScheduler:
    """Owns the model: every forward pass runs on its thread, so no two calls ever run it at once."""

    def __init__(self, model, vocab, device: torch.device, kv_budget_tokens: int, max_waiting_sessions: int,
                 session_idle_seconds: float, stop_check_every: int = 1, compile_one_row: bool = False,
                 speech_head: torch.nn.Module | None = None):
        self.model, self.vocab, self.device = model, vocab, device
        # The LM head's speech rows then the end token's row as one layer, when the caller made one
        # (`quantize_int8`'s int8 copy); else `_speech_logits` reads those rows from the head itself.
        self.speech_head = speech_head
        model.set_attn_implementation("llasa_decode")  # see lm_pool.decode_attention
        # A step of one row (an N = 1 request alone on the replica) is mostly the per-op overhead of
        # eager modules; compiled (`compile_for_one_row`), the model and the speech logits run as one
        # generated program. Batched steps and prefills, whose ops the rows amortise, stay eager.
        self._one_row_logits = compile_for_one_row(self._logits, device) if compile_one_row else self._logits
        self._frozen = compile_one_row and device.type == "cpu"
        # Drawing a lone row's token is a dozen small ops over the speech columns; compiled, one.
        self._one_row_draw = torch.compile(self._inverse_cdf, dynamic=True) if compile_one_row else self._inverse_cdf
        config = model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.pool = KVPool(config.num_hidden_layers, config.num_key_value_heads, head_dim, model.dtype, device,
                           filler_token=config.pad_token_id if config.pad_token_id is not None else 0)
        self.kv_budget_tokens = kv_budget_tokens
        self.max_waiting_sessions = max_waiting_sessions
        self.session_idle_seconds = session_idle_seconds
        # Reading sampled tokens back to the host to spot end tokens is a device sync: on an
        # accelerator it is done every few steps (a finished row then runs a few wasted steps).
        self.stop_check_every = stop_check_every
        # After SPEECH_GENERATION_START only speech tokens and the end token may follow, so only
        # their rows of the LM head are computed (a third of Llasa-1B's vocabulary): columns
        # 0..num-1 are the speech codes, num the end token, num+1.. never-sampled padding (-inf;
        # other history tokens map to num+1 for the repetition penalty).
        first, num = vocab.first_speech_id, vocab.num_speech_tokens
        width = -(-(num + 2) // _BLOCK) * _BLOCK  # never-sampled padding up to whole sampling blocks
        self._column_ids = torch.cat([
            torch.arange(first, first + num), torch.full((width - num,), vocab.speech_end_id)
        ]).to(device)
        self._arange = torch.arange(0, device=device)

        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._waiting: deque[_Call] = deque()  # starts admitted once KV budget frees
        self._released: OrderedDict[str, None] = OrderedDict()
        self._registry_lock = threading.Lock()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._active: list[_Row] = []  # rows in the next forward pass; row i sits in slot i
        self._owner: list[_Row | None] = [None] * self.pool.slots
        self._calls: list[_Call] = []
        self._layout = 0  # bumped whenever a row joins, leaves or moves: per-call indices are rebuilt

        # Counters (read from other threads for stats; plain ints).
        self.tokens_computed = 0  # positions run through the model (prefill + decode rows)
        self.forward_passes = 0  # decode steps
        self.forward_rows = 0  # rows run by decode steps
        self.prefills = 0
        self.sessions_expired = 0
        self.sessions_refused = 0
        self._thread = threading.Thread(target=self._loop, name="lm-scheduler", daemon=True)
        self._thread.start()

    # API (any thread) --------------------------------------------------------------------------
    def submit(self, request: GenerateRequest) -> Future:
        future: Future = Future()
        self._inbox.put(("generate", request, future))
        return future

    def release(self, session_id: str) -> None:
        with self._registry_lock:
            self._released[session_id] = None
            while len(self._released) > _RELEASED_IDS_KEPT:
                self._released.popitem(last=False)
        self._inbox.put(("release", session_id, None))

    def close(self) -> None:
        """Stop the thread (after the step it is running); calls still queued are never answered."""
        self._inbox.put(("close", None, None))
        self._thread.join(timeout=30)

    @property
    def live_sessions(self) -> int:
        return len(self._sessions)

    @property
    def kv_reserved_tokens(self) -> int:
        return sum(s.reserved for s in list(self._sessions.values()))

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_budget_tokens - self.kv_reserved_tokens

    @property
    def waiting_sessions(self) -> int:
        return len(self._waiting)

    # The loop ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        with torch.inference_mode(), frozen_weights(self._frozen):
            self._run()

    def _run(self) -> None:
        while True:
            try:
                block = not self._active
                while True:
                    try:
                        kind, payload, future = self._inbox.get(block=block, timeout=1.0 if block else None)
                    except queue.Empty:
                        break
                    block = False
                    if kind == "close":
                        return
                    self._expire_idle()
                    self._handle(kind, payload, future)
                self._expire_idle()
                if self._active:
                    self._step()
            except Exception as error:  # noqa: BLE001 - a failed step fails its calls, never the loop
                for call in list(self._calls):
                    self._fail(call, error)

    def _handle(self, kind: str, payload, future: Future | None) -> None:
        if kind == "release":
            session = self._sessions.get(payload)
            if session is not None:
                if session.call is not None:
                    self._fail(session.call, SessionError(f"session {payload!r} was released while it was generating"))
                self._drop(session)
            for call in [c for c in self._waiting if c.request.session_id == payload]:
                self._waiting.remove(call)
                call.future.set_exception(SessionError(f"session {payload!r} was released before it started"))
            return
        if not future.set_running_or_notify_cancel():
            return
        try:
            if payload.parents is None:
                self._admit_start(payload, future)
            else:
                self._continue(payload, future)
        except Exception as error:  # noqa: BLE001 - the caller gets the error, the loop goes on
            call = next((c for c in self._calls if c.future is future), None)
            if call is not None:
                self._fail(call, error)
            elif not future.done():
                future.set_exception(error)

    # Starting a session: admission, then prefill -------------------------------------------------
    def _admit_start(self, request: GenerateRequest, future: Future) -> None:
        if request.num_candidates < 1:
            raise SessionError("num_candidates must be at least 1")
        if len(request.prompt_ids) >= request.max_total_tokens:
            raise SessionError(
                f"the prompt has {len(request.prompt_ids)} tokens, at or over max_total_tokens "
                f"{request.max_total_tokens}: shorten the text or the reference voice"
            )
        need = request.num_candidates * request.max_total_tokens
        if need > self.kv_budget_tokens:
            self.sessions_refused += 1
            raise KVBudgetExhausted(
                f"a search of {request.num_candidates} candidates x {request.max_total_tokens} tokens needs "
                f"{need} KV tokens, over this LM replica's whole budget of {self.kv_budget_tokens}: ask for fewer "
                "candidates or a lower max_total_tokens, or raise lm.kv_budget_tokens"
            )
        call = _Call(request=request, future=future, session=None)  # type: ignore[arg-type]
        old = self._sessions.get(request.session_id)
        if old is not None:  # the id is started again: the new start replaces the old session
            if old.call is not None:
                self._fail(old.call, SessionError(f"session {request.session_id!r} was started again"))
            self._drop(old)
        if self._fits(need) and not self._waiting:
            self._start(call)
        elif len(self._waiting) < self.max_waiting_sessions:
            self._waiting.append(call)
        else:
            self.sessions_refused += 1
            raise KVBudgetExhausted(
                f"this LM replica's KV budget is full ({self.kv_reserved_tokens} of {self.kv_budget_tokens} tokens "
                f"reserved by {len(self._sessions)} live searches, {len(self._waiting)} waiting): retry with "
                "backoff, or add LM replicas"
            )

    def _fits(self, need: int) -> bool:
        return self.kv_reserved_tokens + need <= self.kv_budget_tokens

    def _admit_waiting(self) -> None:
        while self._waiting:
            call = self._waiting[0]
            if not self._fits(call.request.num_candidates * call.request.max_total_tokens):
                return
            self._waiting.popleft()
            try:
                self._start(call)
            except SessionError as error:
                call.future.set_exception(error)

    def _start(self, call: _Call) -> None:
        request = call.request
        with self._registry_lock:
            if request.session_id in self._released:
                raise SessionError(f"session {request.session_id!r} was released before it started")
        generator = torch.Generator(device=self.device)
        if request.seed is None:
            generator.seed()
        else:
            generator.manual_seed(request.seed)
        n, length = request.num_candidates, len(request.prompt_ids)
        session = _Session(id=request.session_id, generator=generator, reserved=n * request.max_total_tokens)
        prompt = torch.tensor(request.prompt_ids, device=self.device)
        cache = DynamicCache()
        hidden = self.model.base_model(input_ids=prompt[None], past_key_values=cache).last_hidden_state[0, -1:]
        logits = self._speech_logits(hidden)
        self.tokens_computed += length
        self.prefills += 1
        self._sessions[session.id] = session
        call.session = session
        self._reserve_pool(n, request.max_total_tokens)
        rows = []
        for _ in range(n):
            row = _Row(slot=self._free_slot(), positions=length, first_new=length, read_upto=length)
            self._owner[row.slot] = row
            rows.append(row)
        slots = [row.slot for row in rows]
        self.pool.write_prefill(cache, slots, prompt)
        call.processors = _processors(request.sampling)
        call.rows = rows
        first = self._sample(call, logits.expand(n, -1), self.pool.tokens[slots, :length],
                             torch.arange(n, device=self.device))
        self.pool.tokens[slots, length] = first
        self._begin(call, rows)
        call.sampled = 1
        self._settle(call)

    # Continuing a session ------------------------------------------------------------------------
    def _continue(self, request: GenerateRequest, future: Future) -> None:
        session = self._sessions.get(request.session_id)
        if session is None:
            raise SessionError(f"unknown or expired session {request.session_id!r}: start it with parents=None")
        if session.call is not None:
            raise SessionError(f"session {request.session_id!r} already has a call running: wait for its result")
        parents = []
        for parent in request.parents:
            if not 0 <= parent < len(session.rows):
                raise SessionError(f"parent {parent} is not a row of the previous result")
            row = session.rows[parent]
            if row is None:
                raise SessionError(f"parent {parent} already finished and cannot be continued")
            parents.append(row)
        if not parents:
            raise SessionError("parents is empty: nothing to continue")
        self._sessions.move_to_end(session.id)
        # Rows that no new candidate continues are dropped first, so forks can reuse their slots.
        kept = set(map(id, parents))
        for row in session.rows:
            if row is not None and id(row) not in kept:
                self._free(row)
        session.reserved = max(session.reserved, len(parents) * request.max_total_tokens)
        self._reserve_pool(len(parents), request.max_total_tokens)
        rows, used = [], set()
        for parent in parents:
            if id(parent) in used:  # forked: this child gets its own copy of the parent's KV
                slot = self._free_slot()
                self.pool.copy(parent.slot, slot, parent.positions)
                row = _Row(slot=slot, positions=parent.positions)
                self._owner[slot] = row
            else:
                row = parent
                used.add(id(parent))
            row.first_new = row.read_upto = row.positions + 1
            row.codes, row.finished, row.truncated = [], False, False
            rows.append(row)
        call = _Call(request=request, future=future, session=session)
        self._begin(call, rows)

    def _begin(self, call: _Call, rows: list[_Row]) -> None:
        request = call.request
        call.rows = rows
        call.budget = request.max_new_tokens or request.max_total_tokens
        call.processors = _processors(request.sampling)
        call.session.call = call
        self._calls.append(call)
        for row in rows:
            row.call = call
            self._join(row)

    # The token step --------------------------------------------------------------------------------
    def _step(self) -> None:
        rows = len(self._active)
        lengths = [row.positions for row in self._active]
        kv_length = max(lengths) + 1
        positions = self.pool.positions[:rows].clone()  # on the device: no host-to-device copy per step
        if self._arange.shape[0] < self.pool.length:
            self._arange = torch.arange(self.pool.length, device=self.device)
        row_index = self._arange[:rows]
        input_ids = self.pool.tokens[row_index, positions][:, None]
        mask = None  # rows of equal length (one search, or searches in step) need no padding mask
        if min(lengths) + 1 != kv_length:
            mask = (self._arange[None, :kv_length] <= positions[:, None])[:, None, None, :]
        logits = (self._one_row_logits if rows == 1 else self._logits)(
            input_ids=input_ids, attention_mask=mask, position_ids=positions[:, None],
            past_key_values=StepCache(self.pool, rows, positions, kv_length),
        )
        self.tokens_computed += rows
        self.forward_passes += 1
        self.forward_rows += rows
        next_ids = torch.empty(rows, dtype=torch.long, device=self.device)
        for call in list(self._calls):
            if call.layout != self._layout:
                live = [(row.slot, i) for i, row in enumerate(call.rows) if row.call is call and not row.finished]
                call.slots = torch.tensor([slot for slot, _ in live], device=self.device)
                call.result_rows = torch.tensor([i for _, i in live], device=self.device)
                call.layout = self._layout
            history = self.pool.tokens[call.slots, :kv_length]
            next_ids[call.slots] = self._sample(call, logits[call.slots], history, call.result_rows)
        self.pool.tokens[row_index, positions + 1] = next_ids
        self.pool.positions[:rows] += 1
        for row in self._active:
            row.positions += 1
        for call in list(self._calls):
            call.sampled += 1
            self._settle(call)

    def _sample(self, call: _Call, logits: torch.Tensor, history: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Sample one token for each of the call's result rows `rows`, with its session's generator
        only. One uniform number is drawn for every row of the call, live or not, so what a row
        gets depends neither on the batch nor on when finished rows were noticed."""
        params = call.request.sampling
        scores = logits
        if params.temperature > 0 and params.temperature != 1.0:
            scores = scores / params.temperature
        if call.processors:
            history = self._columns_of(history) if params.repetition_penalty != 1.0 else history
            scores = call.processors(history, scores)
        if params.temperature <= 0:
            return self._column_ids[scores.argmax(dim=-1)]
        uniform = torch.rand(len(call.rows) or len(rows), generator=call.session.generator, device=self.device)
        draw = self._one_row_draw if len(rows) == 1 else self._inverse_cdf
        return self._column_ids[draw(scores, uniform[rows])]

    def _inverse_cdf(self, scores: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """The column of each row's softmax(scores) at which its cumulative mass passes uniform * total."""
        weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
        blocks = weights.view(weights.shape[0], -1, _BLOCK)
        block_cdf = blocks.sum(dim=-1).cumsum(dim=-1)
        target = uniform * block_cdf[:, -1]
        block = torch.searchsorted(block_cdf, target[:, None], right=True).clamp_(max=block_cdf.shape[1] - 1)
        before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_(min=0)), 0.0)
        inner_cdf = blocks[torch.arange(blocks.shape[0], device=scores.device), block[:, 0]].cumsum(dim=-1)
        inner = torch.searchsorted(inner_cdf, target[:, None] - before, right=True).clamp_(max=_BLOCK - 1)
        return (block * _BLOCK + inner)[:, 0].clamp_(max=self.vocab.num_speech_tokens)

    def _logits(self, **inputs) -> torch.Tensor:
        """The speech logits after each row's last input token."""
        return self._speech_logits(self.model.base_model(**inputs).last_hidden_state[:, -1])

    def _speech_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of the speech tokens and the end token only (see `_column_ids`), float32."""
        num = self.vocab.num_speech_tokens
        logits = torch.empty(hidden.shape[0], self._column_ids.shape[0], dtype=torch.float32, device=self.device)
        if self.speech_head is not None:
            logits[:, :num + 1] = self.speech_head(hidden)
        else:
            head = self.model.get_output_embeddings()
            first, end, bias = self.vocab.first_speech_id, self.vocab.speech_end_id, head.bias
            logits[:, :num] = torch.nn.functional.linear(hidden, head.weight[first:first + num],
                                                         None if bias is None else bias[first:first + num])
            logits[:, num:num + 1] = torch.nn.functional.linear(hidden, head.weight[end:end + 1],
                                                                None if bias is None else bias[end:end + 1])
        logits[:, num + 1:] = float("-inf")
        return logits

    def _columns_of(self, history: torch.Tensor) -> torch.Tensor:
        """Token ids -> logit columns, for processors that look at the history (repetition penalty)."""
        first, num = self.vocab.first_speech_id, self.vocab.num_speech_tokens
        speech = (history >= first) & (history < first + num)
        columns = torch.where(speech, history - first, num + 1)
        return columns.masked_fill_(history == self.vocab.speech_end_id, num)

    def _settle(self, call: _Call) -> None:
        """Read what the call's rows sampled when a decision is due; finished rows leave at once,
        and the call ends when its chunk is done or all its rows finished."""
        live = [row for row in call.rows if not row.finished]
        cap = call.request.max_total_tokens
        chunk_done = call.sampled >= call.budget
        at_cap = any(row.positions + 1 >= cap for row in live)
        if not (chunk_done or at_cap or call.sampled % self.stop_check_every == 0):
            return
        low = min(row.read_upto for row in live)
        high = max(row.positions for row in live) + 1
        window = self.pool.tokens[[row.slot for row in live], low:high].tolist()
        for row, tokens in sorted(zip(live, window), key=lambda pair: -pair[0].slot):  # tail first: fewer moves
            for index in range(row.read_upto, row.positions + 1):
                token = tokens[index - low]
                if token == self.vocab.speech_end_id:
                    row.finished = True
                    break
                row.codes.append(token - self.vocab.first_speech_id)
                if index + 1 >= cap:
                    row.finished = row.truncated = True
                    break
            row.read_upto = row.positions + 1
            if row.finished:
                self._leave(row)
                self._free(row)
        if chunk_done or all(row.finished for row in call.rows):
            self._finish(call)

    def _finish(self, call: _Call) -> None:
        session = call.session
        for row in sorted(call.rows, key=lambda row: -row.slot):  # the tail of the batch leaves without moves
            if not row.finished:
                self._leave(row)
        session.rows = [None if row.finished else row for row in call.rows]
        session.call = None
        session.last_used = time.monotonic()
        self._calls.remove(call)
        generated = sum(len(row.codes) + (row.finished and not row.truncated) for row in call.rows)
        result = GenerateResult(
            continuations=tuple(
                Continuation(codes=tuple(row.codes), finished=row.finished, truncated=row.truncated)
                for row in call.rows
            ),
            prefill_tokens=len(call.request.prompt_ids) if call.request.parents is None else 0,
            generated_tokens=generated,
            seconds=time.perf_counter() - call.started,
        )
        for row in call.rows:
            row.call = None
        call.future.set_result(result)

    def _fail(self, call: _Call, error: BaseException) -> None:
        """End a call with an error; its session is dropped (it cannot go on) and its rows only."""
        if call in self._calls:
            self._calls.remove(call)
        for row in call.rows:
            if row.call is call:
                self._leave(row)
                self._free(row)
                row.call = None
        if call.session is not None:
            call.session.call = None
            self._drop(call.session)
        if not call.future.done():
            call.future.set_exception(error)

    # Sessions and slots ----------------------------------------------------------------------------
    def _drop(self, session: _Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        for row in session.rows:
            if row is not None:
                self._free(row)
        session.rows = []
        self._admit_waiting()

    def _expire_idle(self) -> None:
        deadline = time.monotonic() - self.session_idle_seconds
        idle = [s for s in self._sessions.values() if s.call is None and s.last_used < deadline]
        for session in idle:
            self._drop(session)
        self.sessions_expired += len(idle)

    def _reserve_pool(self, rows: int, max_total_tokens: int) -> None:
        used = sum(owner is not None for owner in self._owner)
        self.pool.reserve(used + rows, max_total_tokens + 1)
        self._owner += [None] * (self.pool.slots - len(self._owner))

    def _free_slot(self) -> int:
        for slot in range(len(self._active), len(self._owner)):
            if self._owner[slot] is None:
                return slot
        raise RuntimeError("KV pool has no free slot (reserve first)")

    def _free(self, row: _Row) -> None:
        if row.slot >= 0 and self._owner[row.slot] is row:
            self._owner[row.slot] = None
            self.pool.tokens[row.slot].fill_(self.pool.filler_token)
        row.slot = -1

    def _move(self, row: _Row, slot: int) -> None:
        """Swap `row` into `slot` (and whatever held that slot into the row's old one)."""
        other = self._owner[slot]
        if other is row:
            return
        self.pool.swap(row.slot, slot, row.positions, other.positions if other else 0)
        self._owner[row.slot], self._owner[slot] = other, row
        if other is not None:
            other.slot = row.slot
        row.slot = slot

    def _join(self, row: _Row) -> None:
        self._layout += 1
        self._move(row, len(self._active))
        self._active.append(row)

    def _leave(self, row: _Row) -> None:
        if row.slot < 0 or row.slot >= len(self._active) or self._active[row.slot] is not row:
            return
        self._layout += 1
        last = self._active[-1]
        hole = row.slot
        self._move(last, hole)  # the last active row fills the hole; `row` now sits just past the active range
        self._active[hole] = last
        self._active.pop()
