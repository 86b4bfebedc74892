"""Typed application arguments: what serve_config.yaml's `args:` may say.

Per-deployment scaling (num_replicas, autoscaling_config, ray_actor_options, max_ongoing_requests,
max_queued_requests) is Ray Serve's own `deployments:` section of the same file; these args say
which models to load, how stages batch, and what a request may ask for.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llasa_core.search.config import Aggregation, Strategy
from verifiers.registry import DEFAULT_VERIFIERS, VerifierConfig, validate_configs

TINY_RANDOM = "tiny-random"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchArgs(_Args):
    """@serve.batch settings of a stage that batches across callers."""

    max_batch_size: int = Field(16, ge=1)
    batch_wait_timeout_s: float = Field(0.005, ge=0)


EMBEDDED_LM, EMBEDDED_CODEC = "models/llasa-demo/lm", "models/llasa-demo/codec"


class LMArgs(_Args):
    backend: Literal["transformers", "vllm"] = Field("transformers", description='"vllm" (GPU, the [vllm] extra): '
                                                     "vLLM's async engine with prefix caching")
    model: str = Field(EMBEDDED_LM, description='hub id, local path (the default is the embedded demo model), or '
                                                '"tiny-random" (built on first use; speaks noise)')
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    quantize: Literal["int8"] | None = Field(None, description='"int8": int8 weights for the decoder layers, CPU and '
                                                               "float32 only (a decode step is bound by reading the "
                                                               "weights; README \"CPU speed\")")
    compile_one_row: bool = Field(False, description="transformers: torch.compile the decode step of a lone row (an "
                                                     "N = 1 request alone on the replica; README \"CPU speed\"); "
                                                     "compiles at replica start (10-40 s on a CPU, needs a C++ "
                                                     "compiler)")
    kv_budget_tokens: int | None = Field(None, ge=1, description="KV cache per replica, in tokens (all rows of all "
                                                                "live searches); default: half the GPU's free memory, "
                                                                "a quarter of the host's RAM on CPU")
    max_waiting_sessions: int = Field(8, ge=0, description="new searches that wait for KV budget per replica; "
                                                           "beyond, RESOURCE_EXHAUSTED")
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1, description="vllm: the GPU memory share of the engine "
                                                                        "(weights + paged KV)")
    session_idle_seconds: float = Field(300, gt=0, description="a KV cache unused this long is dropped (its "
                                                               "release was lost, e.g. the replica set changed)")
    long_text_voice: Literal["previous", "none"] = Field(
        "none", description='a long text is searched chunk by chunk; without a reference voice, "previous" gives '
                            "each chunk the previous chunk's speech as its voice (Llasa's chunking; keeps the voice), "
                            '"none" starts each chunk afresh (the demo model cannot continue its own speech)')
    default_voice: str | None = Field(
        None, description="a voice file (.npz, as the voice store keeps them; a path inside the repo or an fsspec URL) "
                          "that speaks every request bringing no reference or saved voice, so that every answer is in "
                          "one voice; none: the model picks a voice per sample, as Llasa without a reference does")

    @model_validator(mode="after")
    def _check_quantize(self) -> "LMArgs":
        if self.quantize and (self.backend != "transformers" or self.device != "cpu" or self.dtype != "float32"):
            raise ValueError("lm.quantize: int8 is for the transformers backend on CPU with dtype float32; on a GPU "
                             "use dtype bfloat16 or the vllm backend")
        if self.compile_one_row and self.backend != "transformers":
            raise ValueError("lm.compile_one_row is for the transformers backend (vLLM captures its own CUDA graphs)")
        return self


class CodecArgs(_Args):
    model: str = Field(EMBEDDED_CODEC, description='X-codec2 in transformers format (hub id or path), a folder with '
                                                   'llasa_codec.json (the embedded demo codec), or "tiny-random"')
    device: str = "cpu"
    batch: BatchArgs = BatchArgs()
    # A search decodes each step's new codes once, with a window of earlier codes as left context
    # (bench/bench_codec_window.py measures it against a whole decode; README "What a search costs").
    decode_context_tokens: int = Field(50, ge=0, description="earlier codes decoded as left context of new ones "
                                                              "(50 = 1 s)")
    decode_redo_tokens: int = Field(10, ge=0, description="of those, the last ones decoded again: their audio, "
                                                         "first decoded without the codes after them, is replaced")

    @model_validator(mode="after")
    def _check_window(self) -> "CodecArgs":
        if self.decode_redo_tokens > self.decode_context_tokens:
            raise ValueError("codec.decode_redo_tokens must be at most codec.decode_context_tokens")
        return self


class Limits(_Args):
    """What one request may ask for; a request over a limit gets INVALID_ARGUMENT with a message
    that names the limit. DescribeServer reports every one of them."""

    max_text_chars: int = Field(1000, ge=1)
    max_n: int = Field(16, ge=1)
    max_beam_width: int = Field(16, ge=1)
    max_speech_tokens: int = Field(1500, ge=1, description="generated speech tokens per candidate (50 = 1 s)")
    max_steps: int = Field(500, ge=1, description="search steps, ceil(max_speech_tokens / step_tokens); prm_steps too")
    max_search_tokens: int = Field(24_000, ge=1,
                                   description="n * max_speech_tokens: speech tokens one search may generate")
    max_total_tokens: int = Field(2048, ge=2, description="prompt + generated, the model's context")
    max_verifiers: int = Field(4, ge=1, description="distinct verifiers one request may name")
    max_reference_seconds: float = Field(20.0, gt=0)
    # The gRPC proxy refuses any message over 4 MiB itself (RESOURCE_EXHAUSTED, grpc's default).
    max_reference_bytes: int = Field(3_500_000, ge=1, description="size of the reference voice file")
    min_sample_rate: int = Field(8_000, ge=1, description="of the reference voice file")
    max_sample_rate: int = Field(48_000, ge=1)
    max_timeout_seconds: float = Field(600.0, gt=0, description="the largest timeout_seconds a request may ask for")


class AuthArgs(_Args):
    """Optional API keys. With either source set, every RPC (DescribeServer too) needs
    `x-api-key: <key>` or `authorization: Bearer <key>` metadata, else UNAUTHENTICATED.
    Keys are read when the ingress starts, compared in constant time and never logged."""

    api_keys_env: str | None = Field(
        None, description="environment variable of the ingress replicas: keys, comma-separated")
    api_keys_file: str | None = Field(
        None, description="file with one key per line (# comments); relative to the repo root")

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys_env or self.api_keys_file)


class ResilienceArgs(_Args):
    """How the orchestrator treats stage failures. Codec decoding and verifier scoring are pure
    functions of their inputs, so a call that hits a dead replica is repeated; an LM step is not
    (its KV cache died with the replica), so a lost LM replica fails the request with UNAVAILABLE
    and the client retries. A slow answer is not a death: every stage call may take the time the
    request's deadline leaves, and a request out of time ends with DEADLINE_EXCEEDED."""

    stage_retries: int = Field(2, ge=0, description="repeats of a codec or verifier call after a replica failure")
    retry_backoff_s: float = Field(0.25, ge=0, description="first pause before a repeat; doubles each time")
    stage_timeout_s: float = Field(60.0, gt=0, description="how often a waiting codec or verifier call checks that "
                                                           "the stage has a running replica (none: the call failed); "
                                                           "a request's calls may take the time its deadline leaves")


class Defaults(_Args):
    """What a request that leaves a field unset gets."""

    strategy: Strategy = "best_of_n"
    n: int = Field(1, ge=1)
    beam_width: int = Field(1, ge=1)
    step_tokens: int = Field(50, ge=1)
    stream_step_tokens: int | None = Field(None, ge=1, description="a streamed request that sets no step_tokens "
                                           "gets this: a smaller step commits a tree search's audio sooner, at more "
                                           "codec and verifier calls (None: step_tokens)")
    prm_steps: int = Field(2, ge=1)
    aggregation: Aggregation = "last"
    max_speech_tokens: int = Field(500, ge=1)
    temperature: float = 0.8
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    # Used when a request names no verifier at all (weights: renormalised over those that apply).
    # No ASR at process steps by default: a prefix scored against the whole text measures how much
    # is still missing more than how well it is said, and its cost grows with the prefix.
    process_verifiers: dict[str, float] = Field(default_factory=lambda: {"speaker": 1.0})
    outcome_verifiers: dict[str, float] = Field(default_factory=lambda: {"asr": 1.0})
    timeout_seconds: float = Field(120.0, gt=0)
    process_window_seconds: float = Field(3.0, gt=0, description="speaker and emotion verifiers at process steps "
                                                                 "hear only this much of a partial candidate's end")


class LlasaAppArgs(_Args):
    lm: LMArgs = LMArgs()
    codec: CodecArgs = CodecArgs()
    verifiers: list[VerifierConfig] = Field(default_factory=lambda: list(DEFAULT_VERIFIERS))
    verifier_batch: BatchArgs = BatchArgs()
    limits: Limits = Limits()
    defaults: Defaults = Defaults()
    auth: AuthArgs = AuthArgs()
    resilience: ResilienceArgs = ResilienceArgs()
    torch_threads: int = Field(1, ge=1, description="torch CPU threads per replica")
    tiny_cache_dir: str = Field(".cache/tiny", description="where tiny-random checkpoints live; relative to the repo root")
    voice_store: str = Field(".cache/voices", description="saved voices: a directory (relative to the repo root) or "
                                                          "an fsspec URL every replica reaches, e.g. s3://bucket/voices")
    judge: str | None = Field(None, description="a configured ASR verifier that scores the chosen audio when a request "
                                                "asks (`judge`); no search may weight it, so it stays independent")
    timestamps_verifier: str | None = Field(None, description="a configured faster-whisper ASR verifier that gives "
                                                              "word timestamps when a request asks")

    @model_validator(mode="after")
    def _check(self) -> "LlasaAppArgs":
        validate_configs(self.verifiers)
        names = {v.name for v in self.verifiers}
        for role in ("process_verifiers", "outcome_verifiers"):
            unknown = sorted(set(getattr(self.defaults, role)) - names)
            if unknown:
                raise ValueError(f"defaults.{role} names {unknown}, which are not configured verifiers {sorted(names)}")
        kinds = {v.name: v for v in self.verifiers}
        for role in ("judge", "timestamps_verifier"):
            name = getattr(self, role)
            if name is not None and (name not in kinds or kinds[name].kind != "asr"):
                raise ValueError(f"{role} {name!r} must name a configured ASR verifier, one of "
                                 f"{sorted(n for n, v in kinds.items() if v.kind == 'asr')}")
        if self.timestamps_verifier and kinds[self.timestamps_verifier].backend not in ("faster-whisper", "ensemble"):
            raise ValueError(f"timestamps_verifier {self.timestamps_verifier!r} needs a faster-whisper model")
        if self.judge and self.judge in set(self.defaults.process_verifiers) | set(self.defaults.outcome_verifiers):
            raise ValueError(f"the judge {self.judge!r} may not be a default search verifier: it would not be independent")
        if self.defaults.max_speech_tokens > self.limits.max_speech_tokens:
            raise ValueError("defaults.max_speech_tokens is over limits.max_speech_tokens")
        if self.defaults.timeout_seconds > self.limits.max_timeout_seconds:
            raise ValueError("defaults.timeout_seconds is over limits.max_timeout_seconds")
        if self.limits.min_sample_rate > self.limits.max_sample_rate:
            raise ValueError("limits.min_sample_rate is over limits.max_sample_rate")
        d, limits = self.defaults, self.limits
        if d.n > limits.max_n or d.beam_width > limits.max_beam_width:
            raise ValueError("defaults.n / defaults.beam_width are over limits.max_n / limits.max_beam_width")
        if len(set(d.process_verifiers) | set(d.outcome_verifiers)) > limits.max_verifiers:
            raise ValueError("the default verifiers are more than limits.max_verifiers")
        return self


def in_repo(path: str) -> str:
    """A relative path that exists inside the repo, from its root whatever a replica's cwd (e.g.
    models/llasa-demo/lm); anything else (a hub id, a URL, an absolute path) as given."""
    inside = PROJECT_ROOT / path
    return str(inside) if not os.path.isabs(path) and "://" not in path and inside.exists() else path


def resolve_model(model: str, kind: Literal["llasa", "xcodec2"], cache_dir: str) -> str:
    """A loadable path or hub id (relative paths inside the repo resolve from its root); "tiny-random" builds the tiny checkpoint once, atomically,
    since several replicas may start at the same moment."""
    if model != TINY_RANDOM:
        return in_repo(model)
    from llasa_core.tiny_checkpoints import make_tiny_llasa, make_tiny_xcodec2

    root = Path(cache_dir) if os.path.isabs(cache_dir) else PROJECT_ROOT / cache_dir
    final = root / kind
    if not final.exists():
        root.mkdir(parents=True, exist_ok=True)
        scratch = root / f".{kind}.{uuid.uuid4().hex}"
        (make_tiny_llasa if kind == "llasa" else make_tiny_xcodec2)(scratch)
        try:
            os.rename(scratch, final)
        except OSError:  # another replica finished first; same seed, same checkpoint
            shutil.rmtree(scratch, ignore_errors=True)
    return str(final)
