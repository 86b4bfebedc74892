"""Stage 3: which text token each speech frame says, by flat-start Viterbi forced alignment.

The demo LM learns to follow the text far sooner when one attention head is told where it is in
the text (train_lm's alignment prior). A straight diagonal is only right on average: speaking rate,
pauses and long vowels move the true position by several phonemes. This finds the real position
with the oldest trick in speech recognition: each text symbol is one Gaussian over log-mel frames,
the frames of an utterance are split monotonically over its symbols by dynamic programming, the
Gaussians are re-estimated from that split, and so on. Piper speech of one voice is clean enough
that a few iterations settle.

Spaces, stress and length marks and punctuation may take no frames (a space between words is
usually silent for zero frames, a full stop for many); every other symbol takes at least one.
Silence before and after the text is a symbol of its own. Writes `<cache>/align/<shard>.npz`;
a rerun does nothing unless a shard lacks its alignment (then all are redone: the Gaussians are
shared) or `--force`. About 1 minute per iteration for 3.3 hours of speech.
"""

from __future__ import annotations

import numpy as np

SKIPPABLE = set(" .,?!;:ˈˌː")


def viterbi(cost: np.ndarray, skippable: np.ndarray) -> np.ndarray:
    """The monotonic path through units (columns of `cost`, frames by units) of lowest total cost.

    Each frame stays on its unit or moves to the next; a skippable unit may be passed over.
    Returns the unit of every frame.
    """
    frames, units = cost.shape
    inf = np.float32(np.inf)
    may_skip_into = np.zeros(units, bool)  # unit j may be reached from j-2 (j-1 skippable)
    may_skip_into[2:] = skippable[1:-1]
    total = np.full(units, inf, np.float32)
    total[0] = cost[0, 0]
    if skippable[0]:
        total[1] = cost[0, 1]
    moves = np.zeros((frames, units), np.int8)
    for t in range(1, frames):
        advance = np.concatenate(([inf], total[:-1]))
        skip = np.where(may_skip_into, np.concatenate(([inf, inf], total[:-2])), inf)
        options = np.stack((total, advance, skip))
        moves[t] = options.argmin(0)
        total = options.min(0) + cost[t]
    unit = units - 1 if not skippable[-1] or total[-1] <= total[-2] else units - 2
    path = np.empty(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = unit
        unit -= int(moves[t, unit])
    return path


def uniform_path(frames: int, skippable: np.ndarray) -> np.ndarray:
    """The flat start: frames shared evenly over the units that must take some."""
    spoken = np.flatnonzero(~skippable)
    return spoken[np.minimum(np.arange(frames) * len(spoken) // frames, len(spoken) - 1)]


def align(mels: list[np.ndarray], symbols: list[np.ndarray], skippable: list[np.ndarray],
          num_symbols: int, iterations: int = 5, log=print) -> list[np.ndarray]:
    """Per utterance, the index (into its own symbol sequence) that each frame says.

    `symbols[i]` are utterance i's symbol ids (0..num_symbols-1) in text order, `mels[i]` its
    frames; the Gaussians share one diagonal variance, so the cost is a scaled squared distance.
    """
    frames = np.concatenate(mels).astype(np.float32)
    mean, std = frames.mean(0), frames.std(0) + 1e-5
    mels = [((m.astype(np.float32) - mean) / std) for m in mels]
    paths = [uniform_path(len(m), s) for m, s in zip(mels, skippable)]
    for iteration in range(iterations):
        sums = np.zeros((num_symbols, mels[0].shape[1]), np.float64)
        counts = np.zeros(num_symbols)
        for m, sym, path in zip(mels, symbols, paths):
            np.add.at(sums, sym[path], m)
            np.add.at(counts, sym[path], 1)
        centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        total, moved = 0.0, 0
        new_paths = []
        for m, sym, skip, old in zip(mels, symbols, skippable, paths):
            distance = ((m[:, None, :] - centroids[sym][None]) ** 2).sum(-1)
            path = viterbi(distance, skip)
            total += float(distance[np.arange(len(m)), path].sum())
            moved += int((path != old).sum())
            new_paths.append(path)
        paths = new_paths
        log(f"alignment iteration {iteration + 1}: cost per frame {total / len(frames):.2f}, "
            f"{moved / len(frames):.1%} of frames moved")
    return paths


def main() -> None:
    import argparse
    from pathlib import Path

    from demo.speech import per_utterance
    from demo.train_lm import demo_tokenizer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", default=".cache/demo")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    cache = Path(args.cache)
    tokenizer = demo_tokenizer(num_speech_tokens=0)
    shards = sorted((cache / "speech").glob("shard*[0-9].npz"))
    out = cache / "align"
    if not args.force and all((out / path.name).exists() for path in shards):
        print(f"{len(shards)} shards already aligned in {out}")
        return
    mels, symbols, skippable, lengths = [], [], [], []
    symbol_ids: dict[str | int, int] = {"<silence>": 0}
    for path in shards:
        shard = np.load(path)
        lengths.append(shard["lengths"])
        for phonemes, frames in zip(shard["phonemes"], per_utterance(shard["mels"], shard["lengths"])):
            text = tokenizer(str(phonemes), add_special_tokens=False).input_ids
            units = ["<silence>", *text, "<silence>"]
            symbols.append(np.array([symbol_ids.setdefault(u, len(symbol_ids)) for u in units]))
            skippable.append(np.array([u == "<silence>" or tokenizer.decode([u]) in SKIPPABLE for u in units]))
            mels.append(frames)
    print(f"{len(mels)} utterances, {sum(map(len, mels))} frames, {len(symbol_ids)} symbols", flush=True)
    paths = align(mels, symbols, skippable, len(symbol_ids), args.iterations)
    # Frames of the silences point at the first and last text token.
    positions = [np.clip(p - 1, 0, len(s) - 3).astype(np.int16) for p, s in zip(paths, symbols)]
    out.mkdir(parents=True, exist_ok=True)
    start = 0
    for path, shard_lengths in zip(shards, lengths):
        count = len(shard_lengths)
        np.savez(out / path.name, positions=np.concatenate(positions[start:start + count]), lengths=shard_lengths)
        start += count
    durations = np.concatenate([np.bincount(p, minlength=len(s))[1:-1] for p, s in zip(paths, symbols)])
    print(f"frames per text token: mean {durations.mean():.2f}, zero for {np.mean(durations == 0):.1%}")


if __name__ == "__main__":
    main()
