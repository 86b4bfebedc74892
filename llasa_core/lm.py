"""Llasa LM sampling with transformers, step by step, keeping every candidate's KV cache.

A search session starts with one prompt: it is prefilled once, its cache is broadcast to N rows
and N continuations are sampled. Later calls name, for each new candidate, the row it continues (a
row named twice is forked), and only the one pending token per row is run before sampling
resumes. The token account of every call therefore shows exactly what was computed.

Calls of all sessions are batched token by token by the replica's scheduler thread
(`llasa_core.lm_scheduler`), which alone runs the model.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import Future

import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from transformers import AutoModelForCausalLM, AutoTokenizer

from .lm_scheduler import KVBudgetExhausted, LMScheduler, SessionError
from .prompt import LlasaVocab, PromptBuilder
from .stages import GenerateRequest, GenerateResult

__all__ = ["KVBudgetExhausted", "SessionError", "TransformersLM", "kv_bytes_per_token"]


def kv_bytes_per_token(config, dtype: torch.dtype) -> int:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = torch.empty(0, dtype=dtype).element_size()
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * element


def _default_kv_budget(device: torch.device, bytes_per_token: int) -> int:
    """Half of the device's free memory (a quarter of the host's RAM on CPU), in KV tokens."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5) // bytes_per_token
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(ram * 0.25) // bytes_per_token


class Int8Linear(torch.nn.Module):
    """A linear layer with int8 weights (one scale per output channel), run by the faster of two
    CPU kernels for the rows at hand.

    A decode step of one row (an N = 1 request) is one matrix-vector product per layer: torch's
    weight-only int8 kernel (`_weight_int8pack_mm`, bfloat16 activations) does that fastest and
    most exactly, but each extra row costs it nearly as much again (measured: 32 us for one row
    of a 384 x 1,152 layer, 106 us for eight, against fbgemm's 27 and 37). fbgemm's dynamic int8
    GEMM (activations quantized to 8 bits per call) amortises the weights over rows, so batched
    steps and prefills go there. Both kernels hold the same int8 values, packed once for each.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        values = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_int8", values, persistent=False)
        self.register_buffer("scale_bf16", scale.to(torch.bfloat16), persistent=False)
        self.bias = None if linear.bias is None else linear.bias.detach()
        with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao
            warnings.simplefilter("ignore")
            self.batched = DynamicInt8Linear(linear.in_features, linear.out_features, bias_=linear.bias is not None)
            per_channel = torch._make_per_channel_quantized_tensor(
                values, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0)
        self.batched.set_weight_bias(per_channel, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > 1:
            return self.batched(x)
        flat = x.reshape(rows, x.shape[-1]).to(torch.bfloat16)
        out = torch._weight_int8pack_mm(flat, self.weight_int8, self.scale_bf16).to(x.dtype)
        if self.bias is not None:
            out += self.bias
        return out.view(*x.shape[:-1], out.shape[-1])


def quantize_int8(model, vocab: LlasaVocab) -> Int8Linear:
    """Int8 weights for the decoder layers' linear layers (`Int8Linear`), and an int8 copy of the
    LM head's rows that decode steps read (the speech tokens, then the end token), returned.

    On CPU a decode step is bound by reading the weights, so a quarter of float32's bytes makes
    the embedded demo model's step faster (README "CPU speed"). The head itself (tied to the
    embeddings) stays in float32 for prompts and the embedding lookup.
    """
    for parent in list(model.model.layers.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, Int8Linear(child))
    head = model.get_output_embeddings()
    ids = torch.cat([torch.arange(vocab.first_speech_id, vocab.first_speech_id + vocab.num_speech_tokens),
                     torch.tensor([vocab.speech_end_id])])
    rows = torch.nn.Linear(head.in_features, len(ids), bias=head.bias is not None)
    with torch.no_grad():
        rows.weight.copy_(head.weight[ids])
        if head.bias is not None:
            rows.bias.copy_(head.bias[ids])
    return Int8Linear(rows)


class TransformersLM:
    """A Llasa checkpoint (hub id or local path) sampled with plain transformers."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "float32", kv_budget_tokens: int | None = None,
                 max_waiting_sessions: int = 8, session_idle_seconds: float = 300.0, quantize: str | None = None,
                 compile_one_row: bool = False):
        self.device = torch.device(device)
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', not {quantize!r}")
        if quantize and (self.device.type != "cpu" or dtype != "float32"):
            raise ValueError("quantize='int8' is for float32 models on CPU (fbgemm kernels); on a GPU use dtype "
                             "bfloat16 or the vllm backend")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.prompt_builder = PromptBuilder.from_pretrained(model, self.tokenizer)
        self.vocab = self.prompt_builder.vocab
        speech_head = quantize_int8(self.model, self.vocab) if quantize else None
        self.kv_bytes_per_token = kv_bytes_per_token(self.model.config, self.model.dtype)
        if kv_budget_tokens is None:
            kv_budget_tokens = _default_kv_budget(self.device, self.kv_bytes_per_token)
        # A session whose release never arrives (its release went to another replica after the
        # replica set changed, or its orchestrator died) is dropped after session_idle_seconds unused.
        self.scheduler = LMScheduler(
            self.model, self.vocab, self.device, kv_budget_tokens, max_waiting_sessions, session_idle_seconds,
            stop_check_every=1 if self.device.type == "cpu" else 8, compile_one_row=compile_one_row,
            speech_head=speech_head,
        )
        if compile_one_row:  # compile now (tens of seconds on a CPU), not in the first request
            prompt = tuple(self.prompt_ids("Hello."))
            warm_up = GenerateRequest(session_id="compile-warm-up", prompt_ids=prompt, max_new_tokens=2,
                                      max_total_tokens=len(prompt) + 3, seed=0)
            self.generate(warm_up)
            self.release(warm_up.session_id)

    def prompt_ids(self, text: str, reference_text: str | None = None, reference_codes=()) -> list[int]:
        return self.prompt_builder(text, reference_text, reference_codes)

    def submit(self, request: GenerateRequest) -> Future:
        """Queue one call of a session for the scheduler; the future resolves to its result."""
        return self.scheduler.submit(request)

    def generate(self, request: GenerateRequest) -> GenerateResult:
        return self.submit(request).result()

    def release(self, session_id: str) -> None:
        """Forget a session. A call of it still running fails at the next token step (its rows
        only leave the batch), and a start of it not yet run never registers it (a cancelled
        search releases its session to stop the work it started, even work that has not begun)."""
        self.scheduler.release(session_id)

    def close(self) -> None:
        self.scheduler.close()

    @property
    def session_idle_seconds(self) -> float:
        return self.scheduler.session_idle_seconds

    @session_idle_seconds.setter
    def session_idle_seconds(self, seconds: float) -> None:
        self.scheduler.session_idle_seconds = seconds

    @property
    def _sessions(self):
        return self.scheduler._sessions

    @property
    def live_sessions(self) -> int:
        return self.scheduler.live_sessions

    @property
    def sessions_expired(self) -> int:
        return self.scheduler.sessions_expired

    @property
    def tokens_computed(self) -> int:
        return self.scheduler.tokens_computed

    def stats(self) -> dict:
        """Scheduler counters and KV budget, for stage counters, the router and benches."""
        s = self.scheduler
        return dict(
            tokens=s.tokens_computed, forward_passes=s.forward_passes, forward_rows=s.forward_rows,
            prefills=s.prefills, sessions=s.live_sessions, sessions_expired=s.sessions_expired,
            sessions_refused=s.sessions_refused, sessions_waiting=s.waiting_sessions,
            kv_budget_tokens=s.kv_budget_tokens, kv_free_tokens=s.kv_free_tokens,
            kv_positions_copied=s.pool.positions_copied, kv_copy_seconds=s.pool.copy_seconds,
        )
