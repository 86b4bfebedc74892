"""Quality and speed of the embedded demo model on ordinary English prose it never trained on
(or, with `--text templates`, on held-out sentences of its training templates).

    python -m bench.bench_demo [--model models/llasa-demo] [--sentences 16] [--text prose|templates]

For each sentence, one best-of-8 search (seeded) with the ASR verifier (faster-whisper, Whisper
tiny.en) samples 8 i.i.d. candidates: N = 1 is the first one, best-of-4 the verifier's pick among
the first four, best-of-8 its pick among all. Each pick is then transcribed by a judge ASR that is
not the verifier (pocketsphinx) as well as by the verifier's own ASR (optimistic for the picks,
unbiased for N = 1). Also: real-time factor of one N = 1 request (wall / audio seconds), and the
codec round trip (piper speech -> encode -> decode) against the unquantised speech.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path

import numpy as np

PROSE = (
    "The library closes early on public holidays.",
    "She poured a glass of water and sat by the fire.",
    "Our neighbours adopted a puppy from the shelter.",
    "The committee postponed its decision until next month.",
    "Fresh bread smells wonderful in the morning.",
    "He missed the bus because his alarm did not ring.",
    "Please remember to water the plants while I am away.",
    "The museum has a new exhibition about ancient Egypt.",
    "My grandmother knits warm sweaters every winter.",
    "The storm knocked down several trees along the avenue.",
    "Scientists discovered a new species of butterfly.",
    "I usually drink tea instead of coffee in the evening.",
    "The children built a sandcastle on the beach.",
    "Our flight was delayed by almost three hours.",
    "They celebrated the victory with a big dinner.",
    "The recipe needs two eggs and a cup of flour.",
    "A gentle rain fell throughout the afternoon.",
    "The doctor advised him to get more sleep.",
    "We watched the sunset from the top of the hill.",
    "The company announced record profits this quarter.",
)


def training_words(cache: Path) -> set[str]:
    words: set[str] = set()
    for shard in sorted((cache / "speech").glob("shard*[0-9].npz")):
        for text in np.load(shard)["texts"]:
            words.update(re.findall(r"[a-z']+", str(text).lower()))
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models/llasa-demo")
    parser.add_argument("--sentences", type=int, default=len(PROSE))
    parser.add_argument("--text", choices=("prose", "templates"), default="prose")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--cache", default=".cache/demo", help="for the training vocabulary, if present")
    parser.add_argument("--out", default="out/bench_demo.json")
    args = parser.parse_args()

    import torch

    from demo.sentences import HELD_OUT_EXAMPLES

    torch.set_num_threads(2)
    from llasa_core.codec import load_codec
    from llasa_core.engine import LlasaTTS
    from llasa_core.lm import TransformersLM
    from llasa_core.search import SearchConfig
    from verifiers.asr import FasterWhisperTranscriber, PocketSphinxTranscriber, error_rate
    from verifiers.registry import build_verifier
    from tests.verifier_fixtures import synthesize as piper_speech

    sentences = (PROSE if args.text == "prose" else HELD_OUT_EXAMPLES)[: args.sentences]
    seen = training_words(Path(args.cache))
    unseen = sorted({w for s in sentences for w in re.findall(r"[a-z']+", s.lower())} - seen) if seen else None

    codec = load_codec(f"{args.model}/codec")
    engine = LlasaTTS(TransformersLM(f"{args.model}/lm"), codec, {"asr": build_verifier({"name": "asr", "kind": "asr"})})
    whisper = FasterWhisperTranscriber()
    judge = PocketSphinxTranscriber()
    wer = lambda text, hyp: error_rate(text, hyp, "en")[1]

    picks = {"n1": [], "best_of_4": [], "best_of_8": []}
    for index, text in enumerate(sentences):
        prompt_length = len(engine.lm.prompt_ids(text))
        config = SearchConfig(n=args.n, outcome_verifiers={"asr": 1.0}, seed=index,
                              max_total_tokens=prompt_length + 600)
        result = asyncio.run(engine.synthesize(text, config))
        by_id = sorted(result.candidates, key=lambda c: c.id)
        chosen = {
            "n1": by_id[0],
            "best_of_4": max(by_id[:4], key=lambda c: c.final_score),
            "best_of_8": max(by_id, key=lambda c: c.final_score),
        }
        for name, candidate in chosen.items():
            picks[name].append((text, candidate.audio))
        print(f"{index}: {text} | verifier WER of each candidate: "
              f"{[round(c.outcome_scores['asr'].raw, 2) for c in by_id]}", flush=True)

    report: dict = {"text": args.text, "sentences": len(sentences), "unseen_words": unseen}
    for name, items in picks.items():
        texts, audios = zip(*items)
        report[name] = {
            "wer_judge_pocketsphinx": float(np.mean([wer(t, h) for t, h in zip(texts, judge.transcribe(list(audios), "en"))])),
            "wer_verifier_asr_whisper": float(np.mean([wer(t, h) for t, h in zip(texts, whisper.transcribe(list(audios), "en"))])),
        }

    # Real-time factor of one plain request (N = 1, no verifier), the first sentences.
    walls, seconds = 0.0, 0.0
    for index, text in enumerate(sentences[:5]):
        started = time.perf_counter()
        result = asyncio.run(engine.synthesize(text, SearchConfig(n=1, seed=100 + index)))
        walls += time.perf_counter() - started
        seconds += len(result.chosen.audio) / codec.sample_rate
    report["rtf_n1"] = walls / seconds

    speech = [piper_speech(t) for t in sentences]
    coded = codec.decode([codec.encode(a) for a in speech])
    for name, transcriber in (("judge_pocketsphinx", judge), ("whisper", whisper)):
        report[f"codec_{name}"] = {
            "wer_unquantised": float(np.mean([wer(t, h) for t, h in zip(sentences, transcriber.transcribe(speech, "en"))])),
            "wer_round_trip": float(np.mean([wer(t, h) for t, h in zip(sentences, transcriber.transcribe(coded, "en"))])),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
