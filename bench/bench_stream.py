"""Time to first audio through the service, streaming (SynthesizeStream) against one answer at the end.

    flock /tmp/llasa-ray.lock .venv/bin/python -m bench.bench_stream [--sentences 4] [--out out/bench_stream.json]

One run: `serve run serve_config.yaml` (the embedded demo model, a private Ray cluster, free ports),
the same prose sentences and seeds for every setting, one request at a time. Per request: first
audio = the ingress's time from the request's arrival to its first AudioChunk
(timings.first_audio_seconds), total = the ingress's time to the result; for N = 1 also the wall of
the same request through Synthesize (one LM call to the end, no streaming), so the cost of
generating step by step shows. For beam n=8: whether the first committed audio came before the
search ended (before its last progress event), and how much of the audio was streamed by then, at the
configured step (25 tokens) and at 50.
Then one long paragraph (tests/test_streaming.py's, 172 words) at N = 1, chunked by sentences.
Targets (issue 14): N = 1 first audio <= 0.3 s and <= 20 % of the total; beam n=8 first committed
audio before the search ends on >= 50 % of the sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import committed_service  # noqa: E402

from llasa_client import SynthesisOptions, TTSClient  # noqa: E402

SETTINGS = {"n1": dict(n=1), "beam_8x2": dict(strategy="beam", n=8, beam_width=2),  # stream_step_tokens, 25
            "beam_8x2_step50": dict(strategy="beam", n=8, beam_width=2, step_tokens=50)}


def streamed(client: TTSClient, text: str, options: SynthesisOptions) -> dict:
    started = time.perf_counter()
    events = [(time.perf_counter() - started, e) for e in client.synthesize_stream(text, options, timeout=660)]
    kinds = [e.WhichOneof("event") for _, e in events]
    result = events[-1][1].result
    last_progress = max((i for i, k in enumerate(kinds) if k == "progress"), default=-1)
    chunks = [e.audio for _, e in events if e.HasField("audio")]
    before_end = sum(len(e.audio.pcm_f32le) for i, (_, e) in enumerate(events) if kinds[i] == "audio" and i < last_progress)
    return {
        "first_audio_s": result.timings.first_audio_seconds, "total_s": result.timings.total_seconds,
        "client_first_audio_s": next(t for t, e in events if e.HasField("audio")), "client_wall_s": events[-1][0],
        "chunks": len(chunks), "audio_s": result.audio_seconds,
        "first_before_search_end": kinds.index("audio") < last_progress,
        "streamed_before_end": before_end / max(1, sum(len(c.pcm_f32le) for c in chunks)),
        "lm_calls": result.account.lm.calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=4)
    parser.add_argument("--out", default="out/bench_stream.json")
    args = parser.parse_args()
    from bench.bench_demo import PROSE

    texts = list(PROSE[: args.sentences])
    rows: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    with committed_service(Path(tempfile.mkdtemp(prefix="bench-stream-"))) as service:
        with TTSClient(service.address) as client:
            client.synthesize("Warm up.", SynthesisOptions(n=2, seed=0))  # load every model once
            for seed, text in enumerate(texts):
                for name, setting in SETTINGS.items():
                    options = SynthesisOptions(seed=seed, timeout_seconds=600, **setting)
                    row = streamed(client, text, options)
                    if name == "n1":
                        started = time.perf_counter()
                        plain = client.synthesize(text, options, timeout=660)
                        row.update(plain_wall_s=time.perf_counter() - started, plain_total_s=plain.timings.total_seconds,
                                   plain_lm_calls=plain.account.lm.calls)
                    rows[name].append(row)
                    print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
                          flush=True)
            from test_streaming import PARAGRAPH

            long_row = streamed(client, PARAGRAPH, SynthesisOptions(seed=0, timeout_seconds=600))
            print("paragraph", json.dumps(long_row), flush=True)

    mean = lambda name, key: float(np.mean([r[key] for r in rows[name]]))  # noqa: E731
    n1, beam = "n1", "beam_8x2"
    print(f"\ndemo config, {len(texts)} sentences, seeds 0..{len(texts) - 1}, one request at a time, "
          f"{os.cpu_count()} CPU cores; means per request (ingress timings)")
    print(f"N=1   stream: first audio {mean(n1, 'first_audio_s'):.3f} s, total {mean(n1, 'total_s'):.2f} s "
          f"({mean(n1, 'lm_calls'):.0f} LM calls); Synthesize total {mean(n1, 'plain_total_s'):.2f} s "
          f"({mean(n1, 'plain_lm_calls'):.0f} LM call); audio {mean(n1, 'audio_s'):.2f} s")
    for name in ("beam_8x2", "beam_8x2_step50"):
        print(f"{name} stream: first audio {mean(name, 'first_audio_s'):.2f} s, total {mean(name, 'total_s'):.2f} s, "
              f"first committed audio before the search ended on "
              f"{sum(r['first_before_search_end'] for r in rows[name])}/{len(texts)}, audio streamed before the end "
              f"{mean(name, 'streamed_before_end'):.0%}")
    print(f"paragraph ({len(PARAGRAPH.split())} words) N=1: first audio {long_row['first_audio_s']:.2f} s, total "
          f"{long_row['total_s']:.1f} s, {long_row['audio_s']:.1f} s of audio in {long_row['chunks']} stream chunks")
    ratio = float(np.mean([r["first_audio_s"] / r["total_s"] for r in rows[n1]]))
    targets = [
        ("N=1 first audio s", mean(n1, "first_audio_s"), "<= 0.3"),
        ("N=1 first audio / total", ratio, "<= 0.2"),
        ("N=1 streaming total / Synthesize total", mean(n1, "total_s") / mean(n1, "plain_total_s"), "(cost)"),
        ("beam n=8 M=2: share with committed audio before the end",
         float(np.mean([r["first_before_search_end"] for r in rows[beam]])), ">= 0.5"),
        ("beam n=8 M=2, step 50: share with committed audio before the end",
         float(np.mean([r["first_before_search_end"] for r in rows["beam_8x2_step50"]])), "(compare)"),
    ]
    for name, value, target in targets:
        print(f"{name:55s}{value:8.3f}  target {target}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "paragraph": long_row, "targets": {n: v for n, v, _ in targets}}, indent=2))


if __name__ == "__main__":
    main()
