"""What each search setting costs through the service, stage by stage, and what it buys.

    flock /tmp/llasa-ray.lock .venv/bin/python -m bench.bench_search [--sentences 3] [--out out/bench_search.json]

One run: it starts `serve run serve_config.yaml` (the embedded demo model, its own private Ray
cluster, free ports), sends the same prose sentences with the same seeds to every setting, one
request at a time, and stops the service. Requests name no verifier, so each setting uses the
server's defaults (process: speaker similarity, which without a reference voice does not apply;
outcome: ASR), except `beam+asr`, which also steers by ASR at process steps, to compare.

Per setting (means per sentence): wall s at the client; LM, codec and verifier s as the search's
account saw them (queueing included); codec audio s decoded (new + left context); verifier audio s
scored; the WER of the returned audio by an independent judge (pocketsphinx) and by the verifier's
own ASR (Whisper tiny.en), both run here on the returned audio. Then closed-loop throughput of
best-of-4 at 1 and 4 requests in flight, and the ratio targets of issue 17.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import committed_service  # noqa: E402

from llasa_client import SynthesisOptions, TTSClient  # noqa: E402

SETTINGS = {
    "n1": dict(n=1),
    "best_of_8": dict(strategy="best_of_n", n=8),
    "beam_8x2": dict(strategy="beam", n=8, beam_width=2),
    "dvts_8x2": dict(strategy="dvts", n=8, beam_width=2),
    "prm_orm_8": dict(strategy="prm_orm", n=8, beam_width=2),
    "beam_8x2+asr": dict(strategy="beam", n=8, beam_width=2, process_verifiers={"asr": 1.0, "speaker": 1.0},
                         outcome_verifiers={"asr": 1.0}),
}


def measure(client: TTSClient, texts: list[str], options: dict) -> list[dict]:
    rows = []
    for seed, text in enumerate(texts):
        started = time.perf_counter()
        response = client.synthesize(text, SynthesisOptions(seed=seed, timeout_seconds=600, **options), timeout=660)
        wall = time.perf_counter() - started
        account = response.account
        audio, _ = sf.read(io.BytesIO(response.audio), dtype="float32")
        rows.append({
            "text": text, "audio": audio, "wall_s": wall, "audio_s": response.audio_seconds,
            "lm_s": account.lm.seconds, "lm_tokens": account.lm_generated_tokens,
            "codec_s": account.codec.seconds,
            "codec_audio_s": account.codec.audio_seconds + account.codec.context_audio_seconds,
            "verifier_s": sum(v.seconds for v in account.verifiers.values()),
            "verifier_audio_s": sum(v.audio_seconds for v in account.verifiers.values()),
            "verifiers_used": list(response.verifiers_used),
        })
    return rows


def throughput(client: TTSClient, texts: list[str], in_flight: int, requests: int) -> float:
    options = [SynthesisOptions(strategy="best_of_n", n=4, seed=100 + i, timeout_seconds=600) for i in range(requests)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(lambda i: client.synthesize(texts[i % len(texts)], options[i], timeout=660), range(requests)))
    return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--throughput-requests", type=int, default=8, help="0 skips the throughput figures")
    parser.add_argument("--out", default="out/bench_search.json")
    args = parser.parse_args()

    from bench.bench_demo import PROSE
    from verifiers.asr import FasterWhisperTranscriber, PocketSphinxTranscriber, error_rate

    texts = list(PROSE[: args.sentences])
    results, rates = {}, {}
    with committed_service(Path(tempfile.mkdtemp(prefix="bench-search-"))) as service:
        with TTSClient(service.address) as client:
            client.synthesize("Warm up.", SynthesisOptions(n=2, seed=0))  # load every model once
            for name in args.settings.split(","):
                results[name] = measure(client, texts, SETTINGS[name])
                print(f"{name}: {np.mean([r['wall_s'] for r in results[name]]):.2f} s per request", flush=True)
            if args.throughput_requests:
                rates = {k: throughput(client, texts, k, args.throughput_requests) for k in (1, 4)}

    judge, whisper = PocketSphinxTranscriber(), FasterWhisperTranscriber()
    table = {}
    for name, rows in results.items():
        audios = [r["audio"] for r in rows]
        wers = {asr: float(np.mean([error_rate(t, h, "en")[1] for t, h in zip(texts, model.transcribe(audios, "en"))]))
                for asr, model in (("judge", judge), ("verifier", whisper))}
        mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
        table[name] = {key: mean(key) for key in ("wall_s", "audio_s", "lm_s", "lm_tokens", "codec_s", "codec_audio_s",
                                                   "verifier_s", "verifier_audio_s")}
        table[name].update(judge_wer=wers["judge"], verifier_wer=wers["verifier"],
                           verifiers_used=sorted({v for r in rows for v in r["verifiers_used"]}))
    print(f"\ndemo config, {len(texts)} sentences, seeds 0..{len(texts) - 1}, one request at a time, "
          f"{os.cpu_count()} CPU cores; means per request")
    print(f"{'setting':14s}{'wall s':>8s}{'audio s':>8s}{'LM s':>7s}{'codec s':>8s}{'(audio s)':>10s}"
          f"{'verif. s':>9s}{'(audio s)':>10s}{'judge WER':>10s}{'verif. WER':>11s}")
    for name, t in table.items():
        print(f"{name:14s}{t['wall_s']:8.2f}{t['audio_s']:8.2f}{t['lm_s']:7.2f}{t['codec_s']:8.2f}"
              f"{t['codec_audio_s']:10.1f}{t['verifier_s']:9.2f}{t['verifier_audio_s']:10.1f}"
              f"{t['judge_wer']:10.3f}{t['verifier_wer']:11.3f}")
    targets = []
    if {"n1", "best_of_8"} <= table.keys():
        n1, bo8 = table["n1"], table["best_of_8"]
        targets += [("best-of-8 wall / N=1 wall", bo8["wall_s"] / n1["wall_s"], "<= 2.5"),
                    ("(codec + verifier s) / LM s, best-of-8", (bo8["codec_s"] + bo8["verifier_s"]) / bo8["lm_s"],
                     "<= 1"),
                    ("N=1 real-time factor", n1["wall_s"] / n1["audio_s"], "<= 0.3")]
    if {"beam_8x2", "best_of_8"} <= table.keys():
        beam = table["beam_8x2"]
        targets += [("beam wall / best-of-8 wall", beam["wall_s"] / table["best_of_8"]["wall_s"], "<= 1.3"),
                    ("beam audio scored / (n x audio returned)", beam["verifier_audio_s"] / (8 * beam["audio_s"]),
                     "<= 2")]
    if rates:
        targets.append(("throughput 4 in flight / 1 (best-of-4)", rates[4] / rates[1], ">= 3"))
        print(f"\nthroughput, best-of-4, closed loop: {rates[1]:.3f} req/s at 1 in flight, {rates[4]:.3f} at 4")
    print("\nissue 17 targets")
    for label, value, goal in targets:
        print(f"  {label:44s}{value:7.2f}  (target {goal})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"sentences": texts, "settings": table, "throughput_rps": rates,
                                          "targets": {k: v for k, v, _ in targets}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
