"""Latency of one search through Ray Serve against the same search in process, and the service's
throughput at concurrency 1, 4 and 8, printed as figures and ratios in one run.

    .venv/bin/python bench/bench_serve.py [--repeats 3]

It starts its own private Ray cluster and `serve run serve_config.yaml` (free ports), and runs the
in-process engine on the same tiny checkpoints and verifier. The search: beam, n=4, beam_width=2,
100 speech tokens in steps of 25, steered by speaker similarity to a reference voice.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import committed_service  # noqa: E402

from llasa_client import SynthesisOptions, TTSClient  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."
N, WIDTH, STEP, TOKENS = 4, 2, 25, 100


def reference() -> bytes:
    from test_serve import reference_wav

    return reference_wav()


def in_process_latency(repeats: int) -> list[float]:
    import torch

    from deployments.config import resolve_model
    from llasa_core.audio import read_audio
    from llasa_core.codec import load_codec
    from llasa_core.engine import LlasaTTS
    from llasa_core.lm import TransformersLM
    from llasa_core.search import SearchConfig
    from verifiers import VerifierConfig, build_verifier

    torch.set_num_threads(1)
    engine = LlasaTTS(TransformersLM(resolve_model("tiny-random", "llasa", ".cache/tiny")),
                      load_codec(resolve_model("tiny-random", "xcodec2", ".cache/tiny")),
                      {"speaker": build_verifier(VerifierConfig(name="speaker", kind="speaker"))})
    config = SearchConfig(strategy="beam", n=N, beam_width=WIDTH, step_tokens=STEP, max_new_tokens=TOKENS,
                          process_verifiers={"speaker": 1.0}, seed=0)
    audio = read_audio(reference())
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        started = time.perf_counter()
        asyncio.run(engine.synthesize(TEXT, config, reference_audio=audio, reference_text="This is my voice."))
        times.append(time.perf_counter() - started)
    return times[1:]


def options() -> SynthesisOptions:
    return SynthesisOptions(strategy="beam", n=N, beam_width=WIDTH, step_tokens=STEP, max_speech_tokens=TOKENS,
                            process_verifiers={"speaker": 1.0}, seed=0, reference_audio=reference(),
                            reference_text="This is my voice.")


def serve_figures(address: str, repeats: int) -> tuple[list[float], dict[int, float]]:
    with TTSClient(address) as client:
        client.synthesize(TEXT, options())  # warm up
        latencies = []
        for _ in range(repeats):
            started = time.perf_counter()
            client.synthesize(TEXT, options())
            latencies.append(time.perf_counter() - started)
        throughput = {}
        for concurrency in (1, 4, 8):
            total = 2 * concurrency
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda _: client.synthesize(TEXT, options()), range(total)))
            throughput[concurrency] = total / (time.perf_counter() - started)
    return latencies, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    local = in_process_latency(args.repeats)
    with committed_service(Path(tempfile.mkdtemp(prefix="bench-serve-"))) as service:
        served, throughput = serve_figures(service.address, args.repeats)

    local_s, served_s = statistics.median(local), statistics.median(served)
    print(f"beam n={N} M={WIDTH}, {TOKENS} speech tokens in steps of {STEP}, speaker verifier, reference voice;")
    print(f"tiny random checkpoints, serve_config.yaml (1 replica per stage to start; codec and verifiers "
          f"autoscale to 2), {os.cpu_count()} CPU cores")
    print(f"{'latency, median of ' + str(args.repeats):32s}{'seconds':>10s}")
    print(f"{'  in process':32s}{local_s:10.2f}")
    print(f"{'  through Serve (gRPC)':32s}{served_s:10.2f}")
    print(f"{'  ratio Serve / in process':32s}{served_s / local_s:10.2f}")
    print(f"{'throughput through Serve':32s}{'req/s':>10s}{'x conc. 1':>11s}")
    for concurrency, rate in throughput.items():
        print(f"{'  concurrency ' + str(concurrency):32s}{rate:10.3f}{rate / throughput[1]:11.2f}")


if __name__ == "__main__":
    main()
