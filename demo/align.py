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
Silence before and after the text is a symbol of its own. The frames are the code shards' codes
read as their mean log-mel frames (`code_mels` of the codec), so alignment needs no audio (`ShardAligner`);
demo.train_lm runs it on each new shard as it loads it.
"""

from __future__ import annotations

from pathlib import Path

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


def symbol_means(mels: list[np.ndarray], symbols: list[np.ndarray], paths: list[np.ndarray], num_symbols: int) -> np.ndarray:
    sums = np.zeros((num_symbols, mels[0].shape[1]), np.float64)
    counts = np.zeros(num_symbols)
    for m, sym, path in zip(mels, symbols, paths):
        np.add.at(sums, sym[path], m)
        np.add.at(counts, sym[path], 1)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def best_paths(mels, symbols, skippable, centroids: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Viterbi with fixed Gaussians: each utterance's path and the total cost."""
    paths, total = [], 0.0
    for m, sym, skip in zip(mels, symbols, skippable):
        distance = ((m[:, None, :] - centroids[sym][None]) ** 2).sum(-1)
        path = viterbi(distance, skip)
        total += float(distance[np.arange(len(m)), path].sum())
        paths.append(path)
    return paths, total


def align(mels: list[np.ndarray], symbols: list[np.ndarray], skippable: list[np.ndarray],
          num_symbols: int, iterations: int = 5, log=print) -> list[np.ndarray]:
    """Per utterance, the index (into its own symbol sequence) that each frame says.

    `symbols[i]` are utterance i's symbol ids (0..num_symbols-1) in text order, `mels[i]` its
    frames (standardised by the caller); the Gaussians share one diagonal variance, so the cost is
    a squared distance.
    """
    mels = [m.astype(np.float32) for m in mels]
    frames = sum(map(len, mels))
    paths = [uniform_path(len(m), s) for m, s in zip(mels, skippable)]
    for iteration in range(iterations):
        centroids = symbol_means(mels, symbols, paths, num_symbols)
        new_paths, total = best_paths(mels, symbols, skippable, centroids)
        moved = sum(int((p != o).sum()) for p, o in zip(new_paths, paths))
        paths = new_paths
        log(f"alignment iteration {iteration + 1}: cost per frame {total / frames:.2f}, "
            f"{moved / frames:.1%} of frames moved")
    return paths


class ShardAligner:
    """v2: aligns the code shards of demo.data, reading each code as its centroid's log-mel frame
    standardised per voice (the voices' formants differ; one Gaussian per symbol serves all).

    The Gaussians are fitted once, on the first `fit_shards` shards there are, and saved with the
    per-voice statistics in `<folder>/model.npz`; later shards (demo.data keeps adding them) are
    aligned with them in one Viterbi pass. Each shard's alignment is its own file, written
    atomically: `<folder>/<shard>.npz` with `positions` (the text token of every frame).
    """

    def __init__(self, folder: Path, code_mels: np.ndarray, tokenizer, fit_shards: int = 40, iterations: int = 10):
        self.folder, self.code_mels, self.tokenizer = folder, code_mels, tokenizer
        self.fit_shards, self.iterations = fit_shards, iterations

    def units(self, phonemes: str) -> tuple[list, np.ndarray]:
        text = self.tokenizer(phonemes, add_special_tokens=False).input_ids
        units = [-1, *text, -1]  # -1: silence before and after
        return units, np.array([u == -1 or self.tokenizer.decode([u]) in SKIPPABLE for u in units])

    def frames(self, shard) -> tuple[list[np.ndarray], list[str]]:
        from demo.data import per_utterance

        return per_utterance(self.code_mels[shard["codes"].astype(np.int64)], shard["lengths"]), [str(v) for v in shard["voices"]]

    def update(self, shard_paths: list[Path], log=print) -> None:
        """Align every shard that has no alignment yet (fitting the model first if there is none)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model_path = self.folder / "model.npz"
        todo = [p for p in shard_paths if not (self.folder / p.name).exists()]
        if not todo:
            return
        if not model_path.exists():
            self.fit(shard_paths[: self.fit_shards], model_path, log)
            todo = [p for p in shard_paths if not (self.folder / p.name).exists()]
        model = np.load(model_path)
        symbol_index = {int(t): i for i, t in enumerate(model["tokens"])}
        stats = {str(v): (m, s) for v, m, s in zip(model["voices"], model["voice_means"], model["voice_stds"])}
        unknown = len(model["tokens"])  # a symbol the fit never saw: the mean frame (0 after standardising)
        centroids = np.concatenate([model["centroids"], np.zeros((1, model["centroids"].shape[1]), np.float32)])
        for path in todo:
            shard = np.load(path)
            mels, voices = self.frames(shard)
            symbols, skippable, lengths = [], [], []
            for phonemes in shard["phonemes"]:
                units, skip = self.units(str(phonemes))
                symbols.append(np.array([symbol_index.get(u, unknown) for u in units]))
                skippable.append(skip)
            mels = [(m - stats[v][0]) / stats[v][1] if v in stats else m for m, v in zip(mels, voices)]
            paths, _ = best_paths(mels, symbols, skippable, centroids)
            self.save(path.name, paths, symbols, shard["lengths"])

    def fit(self, shard_paths: list[Path], model_path: Path, log) -> None:
        mels, voices, units, skippable, shards = [], [], [], [], []
        for path in shard_paths:
            shard = np.load(path)
            shard_mels, shard_voices = self.frames(shard)
            mels += shard_mels
            voices += shard_voices
            for phonemes in shard["phonemes"]:
                u, skip = self.units(str(phonemes))
                units.append(u)
                skippable.append(skip)
            shards.append((path.name, len(shard_mels), shard["lengths"]))
        tokens = sorted({u for us in units for u in us})
        symbol_index = {t: i for i, t in enumerate(tokens)}
        symbols = [np.array([symbol_index[u] for u in us]) for us in units]
        names = sorted(set(voices))
        stats = {}
        for name in names:
            frames = np.concatenate([m for m, v in zip(mels, voices) if v == name])
            stats[name] = (frames.mean(0), frames.std(0) + 1e-5)
        mels = [(m - stats[v][0]) / stats[v][1] for m, v in zip(mels, voices)]
        log(f"fitting the aligner on {len(mels)} utterances of {len(shard_paths)} shards, {len(tokens)} symbols")
        paths = align(mels, symbols, skippable, len(tokens), self.iterations, log)
        start = 0
        for name, count, lengths in shards:
            self.save(name, paths[start:start + count], symbols[start:start + count], lengths)
            start += count
        tmp = model_path.with_name("model.tmp.npz")
        np.savez(tmp, tokens=np.array(tokens), centroids=symbol_means(mels, symbols, paths, len(tokens)),
                 voices=np.array(names), voice_means=np.stack([stats[n][0] for n in names]),
                 voice_stds=np.stack([stats[n][1] for n in names]))
        tmp.rename(model_path)
        durations = np.concatenate([np.bincount(p, minlength=len(s))[1:-1] for p, s in zip(paths, symbols)])
        log(f"frames per text token: mean {durations.mean():.2f}, zero for {np.mean(durations == 0):.1%}")

    def save(self, name: str, paths, symbols, lengths) -> None:
        # Frames of the silences point at the first and last text token.
        positions = [np.clip(p - 1, 0, len(s) - 3).astype(np.int16) for p, s in zip(paths, symbols)]
        tmp = self.folder / (name + ".tmp.npz")
        np.savez(tmp, positions=np.concatenate(positions), lengths=lengths)
        tmp.rename(self.folder / name)
