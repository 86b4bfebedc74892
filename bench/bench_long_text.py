"""Long texts on the demo model, in process: chunked by sentences (deployments/long_text.py through
the orchestrator's own code) against the whole text in one search where it fits the context.

    .venv/bin/python -m bench.bench_long_text [--paragraphs 10] [--out out/bench_long_text.json]

Ten paragraphs of 60-200 words made of the bench's prose sentences, N = 1, seed = paragraph index.
Per paragraph: judge WER (pocketsphinx, not the service's ASR) of the whole audio, voice drift
(speaker cosine, GE2E, between the first and the last chunk's audio; for the whole text, between
its first and last stretches of the same lengths), audio seconds and whether any chunk was cut at
its cap. No Ray: the orchestrator class runs over in-process stages (tests/test_streaming.py does
the same).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def paragraphs(count: int) -> list[str]:
    from bench.bench_demo import PROSE
    from test_streaming import PARAGRAPH

    from deployments.long_text import sentences

    pool = list(PROSE) + sentences(PARAGRAPH, "en")
    out = []
    for i in range(count):
        target, words, chosen, k = 60 + 140 * i // max(1, count - 1), 0, [], 3 * i
        while words < target:
            sentence = pool[k % len(pool)]
            chosen.append(sentence)
            words += len(sentence.split())
            k += 1
        out.append(" ".join(chosen))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paragraphs", type=int, default=10)
    parser.add_argument("--out", default="out/bench_long_text.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from test_streaming import demo_orchestrator

    from deployments.long_text import speech_tokens_for
    from deployments.orchestrator import SynthesisJob
    from llasa_core.search import SearchConfig
    from llasa_core.stages import ScoreContext
    from verifiers.asr import PocketSphinxTranscriber, error_rate
    from verifiers.registry import build_verifier

    orchestrator, limits = demo_orchestrator.__wrapped__()
    judge, speaker = PocketSphinxTranscriber(), build_verifier({"name": "speaker", "kind": "speaker"})
    rows = []
    for seed, text in enumerate(paragraphs(args.paragraphs)):
        row = {"words": len(text.split())}
        config = SearchConfig(n=1, step_tokens=50, seed=seed, max_new_tokens=500, max_total_tokens=limits.max_total_tokens)
        outcome = asyncio.run(orchestrator._search(SynthesisJob(text=text, config=config), None))
        parts = [len(c.codes) * 320 for c in outcome.result.candidates]
        audio = outcome.result.chosen.audio
        row["chunked"] = measure(text, audio, parts[0], parts[-1], judge, speaker, error_rate, ScoreContext)
        row["chunked"].update(chunks=len(parts), cut=any(c.truncated for c in outcome.result.candidates))
        prompt = len(orchestrator.prompt_builder(text))
        room = limits.max_total_tokens - prompt
        if speech_tokens_for(text) <= room:  # the whole text fits the context: one search, as long as it needs
            whole = asyncio.run(orchestrator._search_text(
                SynthesisJob(text=text, config=config), text, config.model_copy(update={"max_new_tokens": room}),
                None, [], None, None, None))[0]
            row["whole"] = measure(text, whole.chosen.audio, parts[0], parts[-1], judge, speaker, error_rate,
                                   ScoreContext)
            row["whole"].update(cut=whole.chosen.truncated)
        rows.append(row)
        print(json.dumps(row), flush=True)
    chunked = [r["chunked"] for r in rows]
    print(f"\n{len(rows)} paragraphs of {min(r['words'] for r in rows)}-{max(r['words'] for r in rows)} words, demo "
          f"model, N = 1: chunked: judge WER {np.mean([c['judge_wer'] for c in chunked]):.3f}, voice drift (first vs "
          f"last chunk cosine) {np.mean([c['drift_cos'] for c in chunked]):.3f}, "
          f"{sum(c['cut'] for c in chunked)} paragraphs with a chunk cut at its cap")
    fit = [r for r in rows if "whole" in r]
    if fit:
        print(f"where the whole text fits ({len(fit)}): whole judge WER "
              f"{np.mean([r['whole']['judge_wer'] for r in fit]):.3f} against chunked "
              f"{np.mean([r['chunked']['judge_wer'] for r in fit]):.3f}; whole cut at its cap on "
              f"{sum(r['whole']['cut'] for r in fit)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


def measure(text, audio, first, last, judge, speaker, error_rate, ScoreContext) -> dict:
    [heard] = judge.transcribe([audio], "en")
    head, tail = audio[:first], audio[len(audio) - last:]
    [verdict] = speaker.score([tail], [ScoreContext(text=text, reference_audio=head, reference_text=text)])
    return {"judge_wer": error_rate(text, heard, "en")[1], "drift_cos": verdict.raw, "audio_s": len(audio) / 16_000}


if __name__ == "__main__":
    main()
