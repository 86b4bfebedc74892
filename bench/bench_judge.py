"""Does best-of-N buy speech an independent judge hears as better, or only what its verifier likes?

    nice .venv/bin/python -m bench.bench_judge [--model models/llasa-demo] [--sentences 20] [--n 8]

Held-out prose (bench_demo.PROSE and MORE_PROSE below: never in training, with words the demo
model never heard),
spoken in the held-out voice "alto" cloned from one reference sentence. For each sentence the
demo model samples `--n` i.i.d. candidates once (seeded); every verifier config then picks from
the same candidates: N = 1 is the first, best-of-4 its pick among the first four, best-of-8 among
all. Configs:
- tiny.en: Whisper tiny.en's word error rate alone (the embedded default before ASR confidence);
- tiny.en+confidence: that mixed with tiny.en's confidence in the target text (the default now,
  verifiers/asr.py);
- ensemble: mean of Whisper tiny.en and pocketsphinx; ensemble-min: their min;
- ensemble+speaker: that ensemble and resemblyzer speaker similarity, weighted 1:1 (the
  search's weighted mean).
The judge (`verifiers.judge`, Whisper base) is none of them. Per config and N: the judge's WER
and the config's own WER (the verifier's view), each capped at 1 per sentence (the uncapped judge
mean beside it), the overfitting gap (verifier gain - judge gain) and the judge's WER ratio
best-of-8 / N = 1; the judge's and pocketsphinx's WER of tiny.en's best-of-8 picks for confidence
weights from 0 to 0.9; also the judge's own best pick (an oracle: what any verifier could buy).
Candidates are cached per sentence in `--cache`, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.bench_demo import PROSE

REFERENCE_TEXT = "The quick brown fox jumps over the lazy dog."
# Twenty more sentences of ordinary prose in the same style, written for this bench (the demo's
# training text is made from templates and faker, so whole prose sentences are never in it).
MORE_PROSE = (
    "The baker wrapped the warm loaves in brown paper.",
    "Our teacher asked us to read two chapters tonight.",
    "The old bridge was closed for repairs last spring.",
    "She keeps her bicycle in the shed behind the house.",
    "A small boat drifted slowly across the quiet lake.",
    "The orchestra played a cheerful tune after the speech.",
    "He cleaned the kitchen before his parents arrived.",
    "The airport was crowded with travellers this morning.",
    "We planted tomatoes and beans in the back garden.",
    "The lecture about volcanoes lasted nearly an hour.",
    "My cousin sent me a postcard from the mountains.",
    "The farmer counted his sheep before the storm.",
    "Please close the door quietly when you leave.",
    "The new library has comfortable chairs by the windows.",
    "They walked along the river until it grew dark.",
    "The nurse checked his temperature twice a day.",
    "Our kitchen smells of cinnamon every Sunday.",
    "The cat slept on the warm stones in the sun.",
    "He borrowed a ladder to fix the broken gutter.",
    "The students cheered when the holiday was announced.",
)
SENTENCES = PROSE + MORE_PROSE
CONFIGS = ("tiny.en", "tiny.en+confidence", "ensemble", "ensemble-min", "ensemble+speaker")


def reference_voice() -> np.ndarray:
    from demo.voices import HELD_OUT_VOICE, transform
    from tests.verifier_fixtures import synthesize

    audio = transform(synthesize(REFERENCE_TEXT), HELD_OUT_VOICE)
    return (0.9 * audio / np.max(np.abs(audio))).astype(np.float32)


def candidates(args, reference: np.ndarray) -> list[list[np.ndarray]]:
    """`args.n` candidates per sentence, sampled once and cached."""
    import torch

    from llasa_core.codec import load_codec
    from llasa_core.engine import LlasaTTS
    from llasa_core.lm import TransformersLM
    from llasa_core.search import SearchConfig
    from verifiers.registry import build_verifier

    torch.set_num_threads(2)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    engine = None
    out = []
    for index, text in enumerate(SENTENCES[: args.sentences]):
        path = cache / f"{index}-n{args.n}.npz"
        if not path.exists():
            if engine is None:
                engine = LlasaTTS(TransformersLM(f"{args.model}/lm"), load_codec(f"{args.model}/codec"),
                                  {"asr": build_verifier({"name": "asr", "kind": "asr"})})
            prompt = len(engine.lm.prompt_ids(text, REFERENCE_TEXT, engine.codec.encode(reference)))
            config = SearchConfig(n=args.n, outcome_verifiers={"asr": 1.0}, seed=index, max_total_tokens=prompt + 600)
            result = asyncio.run(engine.synthesize(text, config, reference, REFERENCE_TEXT))
            audios = [c.audio for c in sorted(result.candidates, key=lambda c: c.id)]
            np.savez(path, *audios)
            print(f"sampled {index}: {text}", flush=True)
        with np.load(path) as saved:
            out.append([saved[f"arr_{i}"] for i in range(args.n)])
    return out


@dataclass(frozen=True)
class Score:
    score: float | None
    raw: float | None
    confidence: float | None = None


def capped(wer: float) -> float:
    """A WER of at most 1 per sentence: one babbling candidate (12 s of inserted words) would
    otherwise outweigh the rest of the corpus."""
    return min(1.0, wer)


def wer_alone(score: Score) -> float:
    """tiny.en's score without its confidence (0 for a candidate it could not judge)."""
    return 0.0 if score.raw is None else max(0.0, 1.0 - score.raw)


def pick(scores: list[float], k: int) -> int:
    """The best of the first k candidates (the first on a tie)."""
    return int(np.argmax(scores[:k]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/llasa-demo")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--cache", default=".cache/bench_judge")
    parser.add_argument("--out", default="out/bench_judge.json")
    args = parser.parse_args()

    from llasa_core.stages import ScoreContext
    from verifiers.judge import build_judge
    from verifiers.registry import build_verifier

    reference = reference_voice()
    sampled = candidates(args, reference)
    texts = SENTENCES[: args.sentences]
    tiny = build_verifier({"name": "tiny", "kind": "asr", "options": {"cpu_threads": 2}})
    sphinx = build_verifier({"name": "sphinx", "kind": "asr", "backend": "pocketsphinx"})
    speaker = build_verifier({"name": "speaker", "kind": "speaker"})
    judge = build_judge(cpu_threads=2)

    rows = []  # per sentence: per candidate scores of each model, cached beside the candidates
    for index, (text, audios) in enumerate(zip(texts, sampled)):
        path = Path(args.cache) / f"{index}-n{args.n}-scores-v3.json"
        if not path.exists():
            contexts = [ScoreContext(text, reference_audio=reference, reference_text=REFERENCE_TEXT)] * len(audios)
            scored = {name: [{"score": r.score, "raw": r.raw, "confidence": r.detail.get("confidence")}
                             for r in v.score(audios, contexts)] for name, v in
                      (("tiny", tiny), ("sphinx", sphinx), ("speaker", speaker), ("judge", judge))}
            path.write_text(json.dumps(scored))
        rows.append({name: [Score(**r) for r in items] for name, items in json.loads(path.read_text()).items()})

    def config_scores(row, config: str) -> tuple[list[float], list[float]]:
        """(score used to pick, the config's own WER) per candidate."""
        tiny_s = [wer_alone(s) for s in row["tiny"]]
        ens = [(a + b.score) / 2 for a, b in zip(tiny_s, row["sphinx"])]
        if config == "ensemble-min":
            return [min(a, b.score) for a, b in zip(tiny_s, row["sphinx"])], \
                   [max(a.raw, b.raw) for a, b in zip(row["tiny"], row["sphinx"])]
        own = [s.raw for s in row["tiny"]] if config.startswith("tiny.en") else \
              [(a.raw + b.raw) / 2 for a, b in zip(row["tiny"], row["sphinx"])]
        if config == "tiny.en":
            return tiny_s, own
        if config == "tiny.en+confidence":
            return [s.score for s in row["tiny"]], own
        if config == "ensemble":
            return ens, own
        return [(e + (s.score or 0.0)) / 2 for e, s in zip(ens, row["speaker"])], own

    per_sentence: dict[str, np.ndarray] = {}
    report: dict = {"sentences": len(texts), "n": args.n, "judge": "whisper base (verifiers.judge)", "configs": {}}
    for config in CONFIGS:
        entry = {}
        for k, label in ((1, "n1"), (4, "best_of_4"), (8, "best_of_8")):
            if k > args.n:
                continue
            picks = [pick(config_scores(row, config)[0], k) for row in rows]
            entry[label] = {
                "judge_wer": float(np.mean([capped(row["judge"][p].raw) for row, p in zip(rows, picks)])),
                "judge_wer_uncapped": float(np.mean([row["judge"][p].raw for row, p in zip(rows, picks)])),
                "verifier_wer": float(np.mean([capped(config_scores(row, config)[1][p]) for row, p in zip(rows, picks)])),
                "pocketsphinx_wer": float(np.mean([capped(row["sphinx"][p].raw) for row, p in zip(rows, picks)])),
                "speaker_sim": float(np.mean([row["speaker"][p].raw or 0.0 for row, p in zip(rows, picks)])),
            }
        best = entry.get("best_of_8") or entry["best_of_4"]
        entry["judge_ratio_best_over_n1"] = best["judge_wer"] / max(entry["n1"]["judge_wer"], 1e-9)
        entry["verifier_gain"] = entry["n1"]["verifier_wer"] - best["verifier_wer"]
        entry["judge_gain"] = entry["n1"]["judge_wer"] - best["judge_wer"]
        entry["overfitting_gap"] = entry["verifier_gain"] - entry["judge_gain"]
        per_sentence[config] = np.array([capped(row["judge"][pick(config_scores(row, config)[0], args.n)].raw)
                                         for row in rows])
        report["configs"][config] = entry
    # Paired bootstrap over sentences: judge WER at best-of-N, each config minus tiny.en.
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(rows), size=(5000, len(rows)))
    report["judge_wer_minus_tiny_en_ci95"] = {
        config: [float(np.percentile((per_sentence[config] - per_sentence["tiny.en"])[draws].mean(axis=1), q))
                 for q in (2.5, 97.5)] for config in CONFIGS if config != "tiny.en"}
    # The confidence weight w of the tiny.en verifier, swept on the same candidates: score =
    # (1 - w) * accuracy + w * confidence; judge and pocketsphinx WER of the best-of-8 picks.
    report["confidence_weight_sweep"] = {}
    for weight in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
        picks = [pick([(1 - weight) * wer_alone(s) + weight * (s.confidence or 0.0) for s in row["tiny"]], args.n)
                 for row in rows]
        report["confidence_weight_sweep"][str(weight)] = {
            "judge_wer": float(np.mean([capped(row["judge"][p].raw) for row, p in zip(rows, picks)])),
            "pocketsphinx_wer": float(np.mean([capped(row["sphinx"][p].raw) for row, p in zip(rows, picks)])),
        }
    # Oracle: the judge's own pick, the most any verifier could buy from these candidates.
    report["judge_oracle_best_of_8_wer"] = float(np.mean([capped(min(s.raw for s in row["judge"])) for row in rows]))
    report["judge_mean_candidate_wer"] = float(np.mean([capped(s.raw) for row in rows for s in row["judge"]]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print("\n| config | judge WER N=1 | best-of-4 | best-of-8 | ratio 8/1 | verifier WER N=1 -> 8 | gap |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for config, e in report["configs"].items():
        print(f"| {config} | {e['n1']['judge_wer']:.3f} | {e['best_of_4']['judge_wer']:.3f} | "
              f"{e.get('best_of_8', e['best_of_4'])['judge_wer']:.3f} | {e['judge_ratio_best_over_n1']:.2f} | "
              f"{e['n1']['verifier_wer']:.3f} -> {e.get('best_of_8', e['best_of_4'])['verifier_wer']:.3f} | "
              f"{e['overfitting_gap']:+.3f} |")


if __name__ == "__main__":
    main()
