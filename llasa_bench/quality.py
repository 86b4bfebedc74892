"""`llasa-bench quality`: speech quality as inference compute grows, per search strategy.

For every (strategy, N) setting it synthesises each sentence, measures the chosen audio with
evaluation models, and records the compute the search spent. The evaluation ASR may differ from
the verifier the search used; when they coincide the report says so (`eval_is_verifier`), since a
search can overfit its own verifier. Every report therefore also has an independent judge
(`verifiers.judge`: Whisper base, none of the search's verifiers; the `judge` extra) and, per
setting, the overfitting gap against best_of_n N = 1: the WER the verifier's own ASR says the
search gained, minus the WER the judge says it gained (`verifier_gain`, `judge_gain`,
`overfitting_gap`; a gap near 0 means the search bought real intelligibility).
"""

from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean

import numpy as np
from tqdm import tqdm

from llasa_core.audio import read_audio
from llasa_core.search import SearchConfig
from llasa_core.stages import ScoreContext
from verifiers.judge import JUDGE_NAME

STRATEGIES = ("best_of_n", "beam", "dvts", "prm_orm")


@dataclass(frozen=True)
class Sentence:
    text: str
    reference_audio: np.ndarray | None = None
    reference_text: str | None = None


def read_sentences(path: str | Path) -> list[Sentence]:
    """One sentence a line; `text<TAB>reference.wav<TAB>reference transcript` adds a voice.

    Reference paths are relative to the sentence file.
    """
    path = Path(path)
    sentences = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) == 1:
            sentences.append(Sentence(fields[0].strip()))
        elif len(fields) == 3:
            audio = read_audio(str(path.parent / fields[1]))
            sentences.append(Sentence(fields[0].strip(), audio, fields[2].strip()))
        else:
            raise ValueError(f"{path}:{number}: expected `text` or `text<TAB>wav<TAB>transcript`")
    if not sentences:
        raise ValueError(f"{path} has no sentences")
    return sentences


@dataclass(frozen=True)
class Setting:
    strategy: str
    n: int


def settings(strategies, budgets, beam_width: int) -> list[Setting]:
    """Every valid (strategy, N): tree searches need N a multiple of M and at least M."""
    out = []
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
        for n in budgets:
            if strategy == "best_of_n" or (n >= beam_width and n % beam_width == 0):
                out.append(Setting(strategy, n))
    return out


def search_config(setting: Setting, args, seed: int, has_reference: bool) -> SearchConfig:
    """The paper's pairing: speaker similarity steers steps when there is a voice, ASR decides."""
    process = args.process_verifier or ("speaker" if has_reference else "asr")
    common = dict(n=setting.n, seed=seed, max_new_tokens=int(args.max_seconds * 50), step_tokens=args.step_tokens)
    if setting.strategy == "best_of_n":
        outcome = {args.outcome_verifier: 1.0} if setting.n > 1 else {}
        return SearchConfig(strategy="best_of_n", outcome_verifiers=outcome, **common)
    outcome = {args.outcome_verifier: 1.0} if setting.strategy == "prm_orm" else {}
    return SearchConfig(
        strategy=setting.strategy, beam_width=args.beam_width, prm_steps=args.prm_steps,
        process_verifiers={process: 1.0}, outcome_verifiers=outcome, **common,
    )


def evaluate(evaluators: dict, audio: np.ndarray, sentence: Sentence) -> dict[str, float | None]:
    """Raw metrics of the chosen audio: WER per evaluation ASR, cosine SIM with the reference."""
    context = ScoreContext(sentence.text, reference_audio=sentence.reference_audio,
                           reference_text=sentence.reference_text)
    return {name: evaluator.score([audio], [context])[0].raw for name, evaluator in evaluators.items()}


async def sweep(engine, evaluators, sentences, grid, args) -> list[dict]:
    rows = []
    progress = tqdm(total=len(grid) * len(sentences), desc="quality", unit="synthesis")
    for setting in grid:
        for index, sentence in enumerate(sentences):
            config = search_config(setting, args, args.seed + index, sentence.reference_audio is not None)
            synthesis = await engine.synthesize(sentence.text, config, sentence.reference_audio,
                                                sentence.reference_text)
            metrics = evaluate(evaluators, synthesis.audio, sentence)
            rows.append({
                "strategy": setting.strategy, "n": setting.n, "sentence": index,
                **{f"eval_{name}": value for name, value in metrics.items()},
                "audio_seconds": len(synthesis.audio) / 16_000,
                "lm_prefill_tokens": synthesis.lm_prefill_tokens,
                "lm_generated_tokens": synthesis.lm_generated_tokens,
                "lm_tokens": synthesis.lm_prefill_tokens + synthesis.lm_generated_tokens,
                "codec_audio_seconds": synthesis.codec_audio_seconds,
                "verifier_seconds": synthesis.verifier_seconds,
                "wall_seconds": synthesis.wall_seconds,
                "candidates": synthesis.candidates,
            })
            progress.update()
    progress.close()
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean of every numeric column per (strategy, n); None-valued metrics are left out."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["n"]), []).append(row)
    summary = []
    for (strategy, n), members in groups.items():
        entry = {"strategy": strategy, "n": n, "sentences": len(members)}
        for key in members[0]:
            if key in ("strategy", "n", "sentence"):
                continue
            values = [m[key] for m in members if m[key] is not None]
            entry[key] = mean(values) if values else None
        summary.append(entry)
    return summary


def overfitting(summary: list[dict], verifier_metric: str | None, judge_metric: str | None) -> None:
    """Add verifier_gain, judge_gain and overfitting_gap (WER drops against best_of_n N = 1) to
    each summary entry, where both metrics and the baseline exist."""
    baseline = next((s for s in summary if s["strategy"] == "best_of_n" and s["n"] == 1), None)
    for entry in summary:
        values = [None if baseline is None or m is None or baseline.get(m) is None or entry.get(m) is None
                  else baseline[m] - entry[m] for m in (verifier_metric, judge_metric)]
        entry["verifier_gain"], entry["judge_gain"] = values
        entry["overfitting_gap"] = None if None in values else values[0] - values[1]


def eval_is_verifier(evaluation: dict, verifier_configs: list[dict]) -> bool | None:
    """Whether an evaluation model is one the search optimised (None: unknown, a remote service)."""
    if any("served_by" in v for v in verifier_configs):
        return None
    return any(v["kind"] == evaluation["kind"] and v.get("backend") in (None, evaluation.get("backend"))
               for v in verifier_configs)


def add_judge(evaluators: dict) -> str:
    """Add the independent judge ASR to the evaluators; say what was done."""
    from verifiers.judge import build_judge

    try:
        evaluators[JUDGE_NAME] = build_judge()
    except RuntimeError as error:
        print(f"warning: no independent judge in this report: {error}")
        return f"none: {error}"
    return "whisper base (verifiers.judge), none of the search's verifiers"


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(summary: list[dict], metrics: list[str], path: Path) -> None:
    """Quality against LM tokens spent, one line per strategy, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for strategy in STRATEGIES:
            points = sorted((s["lm_tokens"], s[metric], s["n"]) for s in summary
                            if s["strategy"] == strategy and s.get(metric) is not None)
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=strategy)
                for x, y, n in points:
                    axis.annotate(f"N={n}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("LM tokens per request (prefill + generated)")
        axis.set_ylabel(metric.removeprefix("eval_"))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(args) -> None:
    from llasa_bench.engines import GrpcEngine, InProcessEngine
    from verifiers import build_verifiers

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sentences = read_sentences(args.sentences)
    grid = settings(args.strategies.split(","), [int(n) for n in args.budgets.split(",")], args.beam_width)
    if args.target:
        engine = GrpcEngine(args.target)
        verifier_configs = [{"name": name, "served_by": args.target} for name in engine.verifier_names]
    else:
        if not (args.model and args.codec):
            raise SystemExit("give --target (a running service) or --model and --codec (in process)")
        verifier_configs = [{"name": "asr", "kind": "asr", "backend": args.verifier_asr},
                            {"name": "speaker", "kind": "speaker"}]
        engine = InProcessEngine(args.model, args.codec, verifier_configs)
    eval_configs = [{"name": f"wer_{backend}", "kind": "asr", "backend": backend}
                    for backend in args.eval_asr.split(",")]
    if any(s.reference_audio is not None for s in sentences):
        eval_configs.append({"name": "sim", "kind": "speaker"})
    evaluators = build_verifiers(eval_configs)
    judge_note = add_judge(evaluators)
    rows = asyncio.run(sweep(engine, evaluators, sentences, grid, args))
    summary = summarise(rows)
    verifier_eval = next((c["name"] for c in eval_configs if c["kind"] == "asr" and eval_is_verifier(c, verifier_configs)), None)
    overfitting(summary, verifier_eval and f"eval_{verifier_eval}", f"eval_{JUDGE_NAME}" if JUDGE_NAME in evaluators else None)
    write_csv(out / "quality_rows.csv", rows)
    write_csv(out / "quality_summary.csv", summary)
    metrics = [key for key in summary[0] if key.startswith("eval_")]
    report = {
        "settings": [asdict(s) for s in grid],
        "verifiers": verifier_configs,
        "evaluation": {c["name"]: {**c, "eval_is_verifier": eval_is_verifier(c, verifier_configs)}
                       for c in eval_configs},
        "judge": judge_note,
        "overfitting_verifier_metric": verifier_eval,
        "seed": args.seed,
        "summary": summary,
    }
    (out / "quality.json").write_text(json.dumps(report, indent=2))
    plot(summary, metrics, out / "quality.png")
    for entry in summary:
        figures = "  ".join(f"{m.removeprefix('eval_')}={entry[m]:.3f}" for m in metrics if entry[m] is not None)
        gap = "" if entry["overfitting_gap"] is None else (
            f"  gain verifier={entry['verifier_gain']:+.3f} judge={entry['judge_gain']:+.3f} gap={entry['overfitting_gap']:+.3f}")
        print(f"{entry['strategy']:>9} N={entry['n']:<3} {figures}  lm_tokens={entry['lm_tokens']:.0f}  "
              f"wall={entry['wall_seconds']:.2f}s{gap}")
