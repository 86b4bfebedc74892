"""The LM stage as a serving engine, in process (not a test): closed loop with 1, 2, 4 and 8
concurrent searches, each driving the LM with a search's call pattern, on the demo checkpoint and
on the tiny random Llasa checkpoint, side by side in one run.

- best-of-4: one call, 4 candidates, to the token cap;
- beam n=8 M=2: 8 candidates, then steps of `--step-tokens`: the 4 best (here: rows picked by
  the seeded search RNG, as scores would) continue 2 ways each.

Every search is seeded, so each concurrency level does exactly the same work (a seeded result
does not depend on the batch). Printed per level: aggregate LM tokens/s (prefill + sampled; and
per CPU-second of this process, which a machine shared with other jobs distorts less),
p50/p95 search latency, mean rows per forward pass; then the ratios against 1 search, and the
tokens the LM computed against prefill + sampled (a difference would be a recomputed prefix), and
the KV positions copied by forks and by rows joining/leaving the batch, with their share of time.

    python bench/bench_lm.py                    # both checkpoints
    python bench/bench_lm.py --models tiny --levels 1 8 --searches-per-worker 1
    python bench/bench_lm.py --models demo --quantize int8
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time

import numpy as np
import torch

from llasa_core.engine import LocalLM
from llasa_core.lm import TransformersLM
from llasa_core.stages import GenerateRequest
from llasa_core.tiny_checkpoints import make_tiny_llasa

_runs = itertools.count()  # session ids are never reused, so every run gets its own
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with a single step.",
    "Please call Stella and ask her to bring these things with her from the store.",
]


async def best_of(lm: LocalLM, prompt, session: str, seed: int, new_tokens: int, n: int = 4) -> tuple[int, int]:
    result = await lm.generate(GenerateRequest(session, prompt, num_candidates=n, seed=seed,
                                               max_total_tokens=len(prompt) + new_tokens))
    await lm.release(session)
    return result.prefill_tokens + result.generated_tokens, n


async def beam(lm: LocalLM, prompt, session: str, seed: int, new_tokens: int, step_tokens: int,
               n: int = 8, width: int = 2) -> tuple[int, int]:
    picker = random.Random(seed)
    cap = len(prompt) + new_tokens
    result = await lm.generate(GenerateRequest(session, prompt, num_candidates=n, seed=seed,
                                               max_new_tokens=step_tokens, max_total_tokens=cap))
    tokens = result.prefill_tokens + result.generated_tokens
    while True:
        live = [i for i, c in enumerate(result.continuations) if not c.finished]
        if not live:
            break
        keep = picker.sample(live, min(len(live), n // width))
        parents = tuple(row for row in keep for _ in range(width))
        result = await lm.generate(GenerateRequest(session, prompt, num_candidates=len(parents), parents=parents,
                                                   seed=seed, max_new_tokens=step_tokens, max_total_tokens=cap))
        tokens += result.generated_tokens
    await lm.release(session)
    return tokens, n


async def closed_loop(lm: TransformersLM, kind: str, workers: int, per_worker: int, args) -> dict:
    local = LocalLM(lm)
    prompts = [tuple(lm.prompt_ids(text)) for text in TEXTS]
    latencies: list[float] = []
    tokens = [0]
    before = lm.stats()
    run = next(_runs)

    async def worker(w: int) -> None:
        for i in range(per_worker):
            seed = 1000 * w + i
            prompt, session = prompts[seed % len(prompts)], f"{kind}-{run}-{w}-{i}"
            started = time.perf_counter()
            if kind == "best-of-4":
                done, _ = await best_of(local, prompt, session, seed, args.new_tokens)
            else:
                done, _ = await beam(local, prompt, session, seed, args.new_tokens, args.step_tokens)
            latencies.append(time.perf_counter() - started)
            tokens[0] += done

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    after = lm.stats()
    passes = after["forward_passes"] - before["forward_passes"]
    return dict(
        tokens_per_s=tokens[0] / wall, tokens_per_cpu_s=tokens[0] / cpu,
        p50=float(np.percentile(latencies, 50)), p95=float(np.percentile(latencies, 95)),
        rows_per_forward=(after["forward_rows"] - before["forward_rows"]) / max(passes, 1),
        computed=after["tokens"] - before["tokens"], accounted=tokens[0],
        first_tokens=after["prefills"] - before["prefills"],
        copied_per_search=(after["kv_positions_copied"] - before["kv_positions_copied"]) / len(latencies),
        copy_share=(after["kv_copy_seconds"] - before["kv_copy_seconds"]) / cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["demo", "tiny"], choices=["demo", "tiny"])
    parser.add_argument("--demo-path", default="models/llasa-demo/lm")
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--searches-per-worker", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=100, help="speech tokens per candidate (cap)")
    parser.add_argument("--step-tokens", type=int, default=25, help="beam step length")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quantize", choices=("int8",), default=None, help="int8 decoder weights (CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tiny_dir = tempfile.mkdtemp(prefix="bench-lm-")
    paths = {"demo": args.demo_path, "tiny": str(make_tiny_llasa(tiny_dir)) if "tiny" in args.models else None}
    print(f"closed loop, {args.searches_per_worker} searches per worker, {args.new_tokens} new tokens per "
          f"candidate, beam steps of {args.step_tokens}, {args.threads} torch thread(s), "
          f"{args.quantize or 'float32'} weights")
    for name in args.models:
        lm = TransformersLM(paths[name], quantize=args.quantize)
        for kind in ("best-of-4", "beam-8/2"):
            rows = {}
            for workers in args.levels:
                rows[workers] = asyncio.run(closed_loop(lm, kind, workers, args.searches_per_worker, args))
                r = rows[workers]
                # every sampled token is one forward position, except each start's first (from its prefill logits)
                n = 4 if kind == "best-of-4" else 8
                recomputed = r["computed"] - (r["accounted"] - n * r["first_tokens"])
                print(f"{name:5s} {kind:9s} {workers} concurrent: {r['tokens_per_s']:6.0f} LM tok/s "
                      f"({r['tokens_per_cpu_s']:6.0f} per CPU-s)  "
                      f"p50 {r['p50']:6.2f} s  p95 {r['p95']:6.2f} s  rows/forward {r['rows_per_forward']:5.1f}  "
                      f"recomputed tokens {recomputed}  KV positions copied/search {r['copied_per_search']:.0f} "
                      f"({100 * r['copy_share']:.1f}% of CPU time)")
            low, high = min(args.levels), max(args.levels)
            ratio = {key: rows[high][key] / rows[low][key] for key in ("tokens_per_s", "tokens_per_cpu_s", "p50")}
            print(f"{name:5s} {kind:9s} {high} vs {low}: tokens/s x{ratio['tokens_per_s']:.2f} (target >= 4; per CPU-s "
                  f"x{ratio['tokens_per_cpu_s']:.2f}), p50 x{ratio['p50']:.2f} (target <= 2.5)")
        lm.close()


if __name__ == "__main__":
    main()
