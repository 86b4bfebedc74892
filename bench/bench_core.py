"""LM cost of the search, side by side in one run (not a test).

1. Beam search keeping every candidate's KV cache against the same search recomputing every
   prefix at every step: tokens run through the model, wall time, and their ratio.
2. Best-of-8 as one batched LM call against 8 single-candidate calls.

    python bench/bench_core.py                       # tiny random Llasa-format checkpoint
    python bench/bench_core.py --model PATH --codec PATH
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import Future
from dataclasses import replace

import numpy as np
import torch

from llasa_core.codec import XCodec2Codec
from llasa_core.engine import LlasaTTS
from llasa_core.lm import TransformersLM
from llasa_core.search import SearchConfig
from llasa_core.stages import GenerateRequest, GenerateResult, VerifierScore
from llasa_core.tiny_checkpoints import make_tiny_llasa, make_tiny_xcodec2

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away into the forest."


class RecomputingLM:
    """The baseline without KV reuse: every step starts each candidate over from its whole prefix
    (prompt + codes so far), prefilled again, in a fresh session per parent."""

    def __init__(self, model: str):
        self.lm = TransformersLM(model)
        self.prompt_ids = self.lm.prompt_ids
        self.recomputed_tokens = 0
        self._prefixes: dict[str, list[list[int] | None]] = {}
        self._calls = 0

    def submit(self, request: GenerateRequest) -> Future:
        future: Future = Future()
        try:
            future.set_result(self.generate(request))
        except Exception as error:  # noqa: BLE001 - handed to the caller as the real LM would
            future.set_exception(error)
        return future

    def generate(self, request: GenerateRequest) -> GenerateResult:
        vocab = self.lm.vocab
        if request.parents is None:
            starts = {None: list(range(request.num_candidates))}
        else:
            starts = {}
            for child, parent in enumerate(request.parents):
                starts.setdefault(parent, []).append(child)
        continuations = [None] * sum(len(children) for children in starts.values())
        prefixes: list[list[int] | None] = [None] * len(continuations)
        generated = 0
        for parent, children in starts.items():
            prefix = list(request.prompt_ids) if parent is None else self._prefixes[request.session_id][parent]
            self._calls += 1
            session = f"{request.session_id}/{self._calls}"
            result = self.lm.generate(replace(request, session_id=session, prompt_ids=tuple(prefix), parents=None,
                                              num_candidates=len(children)))
            self.lm.release(session)
            if parent is not None:
                self.recomputed_tokens += result.prefill_tokens
            generated += result.generated_tokens
            for child, continuation in zip(children, result.continuations):
                continuations[child] = continuation
                if not continuation.finished:
                    prefixes[child] = prefix + vocab.codes_to_ids(continuation.codes)
        self._prefixes[request.session_id] = prefixes
        return GenerateResult(continuations=tuple(continuations), prefill_tokens=len(request.prompt_ids)
                              if request.parents is None else 0, generated_tokens=generated, seconds=0.0)

    def release(self, session_id: str) -> None:
        self._prefixes.pop(session_id, None)


class Energy:
    """A cheap deterministic verifier, so the LM cost is what is measured."""

    def score(self, waveforms, contexts):
        return [VerifierScore(score=float(np.tanh(np.sqrt(np.mean(w**2)) * 10)), metric="rms") for w in waveforms]


def beam_cost(lm, codec, config) -> tuple[int, float]:
    engine = LlasaTTS(lm, codec, {"energy": Energy()})
    started = time.perf_counter()
    result = asyncio.run(engine.synthesize(TEXT, config))
    seconds = time.perf_counter() - started
    account = result.account
    computed = account.lm_prefill_tokens + account.lm_generated_tokens + getattr(lm, "recomputed_tokens", 0)
    return computed, seconds, result.chosen.codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--codec")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--step-tokens", type=int, default=25)
    parser.add_argument("--new-tokens", type=int, default=250)
    args = parser.parse_args()
    torch.set_num_threads(1)

    scratch = tempfile.mkdtemp()
    model = args.model or str(make_tiny_llasa(f"{scratch}/llasa"))
    codec = XCodec2Codec(args.codec or str(make_tiny_xcodec2(f"{scratch}/xcodec2")))
    keeping, recomputing = TransformersLM(model), RecomputingLM(model)
    prompt = keeping.prompt_ids(TEXT)
    config = SearchConfig(
        strategy="beam", n=args.n, beam_width=args.beam_width, step_tokens=args.step_tokens,
        process_verifiers={"energy": 1.0}, max_total_tokens=len(prompt) + args.new_tokens, seed=0,
    )
    beam_cost(keeping, codec, config)  # warm up
    kept_tokens, kept_s, kept_codes = beam_cost(keeping, codec, config)
    redo_tokens, redo_s, redo_codes = beam_cost(recomputing, codec, config)
    print(f"beam search n={args.n} M={args.beam_width}, {args.new_tokens} new tokens in steps of "
          f"{args.step_tokens}, prompt {len(prompt)} tokens")
    print(f"  {'':22}{'tokens computed':>16}{'wall s':>10}")
    print(f"  {'KV cache kept':22}{kept_tokens:>16}{kept_s:>10.2f}")
    print(f"  {'prefix recomputed':22}{redo_tokens:>16}{redo_s:>10.2f}")
    print(f"  {'ratio recompute/kept':22}{redo_tokens / kept_tokens:>16.2f}{redo_s / kept_s:>10.2f}")
    print(f"  same answer both ways: {kept_codes == redo_codes} (the baseline's fresh sessions draw other samples)")

    def sample(n, calls):
        started = time.perf_counter()
        prefilled = generated = 0
        for call in range(calls):
            result = keeping.generate(GenerateRequest(
                session_id=f"bo{n}-{call}", prompt_ids=tuple(prompt), num_candidates=n,
                max_total_tokens=len(prompt) + args.new_tokens, seed=call,
            ))
            keeping.release(f"bo{n}-{call}")
            prefilled += result.prefill_tokens
            generated += result.generated_tokens
        return prefilled, generated, time.perf_counter() - started

    batch = sample(args.n, 1)
    single = sample(1, args.n)
    print(f"best-of-{args.n}, {args.new_tokens} new tokens each")
    print(f"  {'':22}{'prefilled':>10}{'generated':>10}{'wall s':>10}")
    print(f"  {'one batched call':22}{batch[0]:>10}{batch[1]:>10}{batch[2]:>10.2f}")
    print(f"  {f'{args.n} single calls':22}{single[0]:>10}{single[1]:>10}{single[2]:>10.2f}")
    print(f"  {'ratio single/batched':22}{single[0] / batch[0]:>10.2f}{single[1] / batch[1]:>10.2f}"
          f"{single[2] / batch[2]:>10.2f}")


if __name__ == "__main__":
    main()
