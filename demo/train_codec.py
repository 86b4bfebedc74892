"""Train demo data v2's codec: `llasa_core.demo_codec.MelFSQ`, log-mel frames -> codes -> magnitude spectra.

    python -m demo.train_codec [--cache .cache/demo] [--out .cache/demo/codec] [--steps 9000] [--levels 8,8,8,8]
        [--channels 256] [--kernel 5] [--encoder-layers 2] [--decoder-layers 3]

demo.data runs this when its codec is missing. Why not the embedded model's k-means codebook:
measured through Whisper tiny.en on fresh speech of the four training voices (24 utterances), the
speech itself has WER 0.13; Griffin-Lim from its true magnitudes 0.18; from its log-mel frames
(pseudo-inverse) 0.24; from the nearest of 4,096 k-means centroids 0.46 (0.39 decoded by each
code's mean spectrum). Quantising single frames is where the words go. A convolutional encoder
chooses each code knowing its neighbours, and the decoder reads a window of codes.

Data: the speech of demo.data's first shards (their audio, `<cache>/v2/audio`; the last shard is
held out). Input: each utterance's log-mel frames (peak-normalised speech, as the codec's
`features`); target: its STFT log magnitudes. Loss: L1 on the log magnitudes plus L1 on their
log-mel (the bands that carry the words weigh as much as the many high bins); crops of up to
`--crop` frames, padding masked as at inference; AdamW with a cosine schedule; the lowest
held-out loss is kept. Then each code's mean log-mel frame on the training speech (what
demo.align reads a code as; a code never used gets its own decoded frame).
"""

from __future__ import annotations

import argparse
import functools
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from llasa_core.demo_codec import LOG_FLOOR, MelFSQ, log_mel, magnitudes, mel_filterbank, save_fsq_codec

FLOOR = 1e-4  # magnitudes and mel energies: -80 dB under the loudest bins of speech, silence not detail


def speech(audio_shards: list[Path], filters: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(log-mel frames, floored log magnitudes) per utterance."""
    from demo.data import load_audio_shard

    out = []
    for path in audio_shards:
        for audio in load_audio_shard(path)["audio"]:
            mags = magnitudes(audio)  # the shards' speech is peak-normalised, as the codec's features are
            if len(mags):
                out.append((torch.from_numpy(log_mel(mags, filters)), torch.from_numpy(np.log(np.maximum(mags, FLOOR)))))
    return out


def batch(utterances, crop: int, rng: random.Random):
    """A crop of up to `crop` frames from each utterance, padded, with the mask."""
    crops = []
    for mels, mags in utterances:
        start = rng.randrange(max(1, len(mels) - crop + 1))
        crops.append((mels[start:start + crop], mags[start:start + crop]))
    length = max(len(m) for m, _ in crops)
    mels = torch.zeros(len(crops), length, crops[0][0].shape[1])
    mags = torch.zeros(len(crops), length, crops[0][1].shape[1])
    mask = torch.zeros(len(crops), length)
    for row, (m, g) in enumerate(crops):
        mels[row, : len(m)], mags[row, : len(m)], mask[row, : len(m)] = m, g, 1
    return mels, mags, mask


def loss_of(net: MelFSQ, filters: torch.Tensor, mels, mags, mask) -> torch.Tensor:
    predicted = net.decode(net.quantise(mels, mask), mask)
    per_frame = (predicted - mags).abs().mean(-1)
    predicted_mel = torch.log((predicted.exp() @ filters.T).clamp_min(FLOOR))
    per_frame = per_frame + (predicted_mel - mels.clamp_min(math.log(FLOOR))).abs().mean(-1)
    return (per_frame * mask).sum() / mask.sum()


@torch.no_grad()
def held_out_loss(net, filters, utterances) -> float:
    net.eval()
    total = [loss_of(net, filters, m[None], g[None], torch.ones(1, len(m))).item() for m, g in utterances]
    net.train()
    return float(np.mean(total))


@torch.no_grad()
def code_mels(net: MelFSQ, utterances, filters: torch.Tensor) -> np.ndarray:
    """Each code's mean log-mel frame on this speech; a code never chosen: its own decoded frame."""
    size = int(torch.prod(net.levels))
    sums, counts = torch.zeros(size, filters.shape[0], dtype=torch.float64), torch.zeros(size)
    for mels, _ in utterances:
        codes = net.codes(net.quantise(mels[None]))[0]
        sums.index_add_(0, codes, mels.double())
        counts += torch.bincount(codes, minlength=size)
    alone = net.decode(net.points(torch.arange(size))[:, None])[:, 0].exp()
    decoded = torch.log((alone @ filters.T).clamp_min(LOG_FLOOR))
    seen = counts > 0
    return torch.where(seen[:, None], sums / counts.clamp_min(1)[:, None], decoded.double()).float().numpy()


def train_codec(audio_shards: list[Path], out: Path, levels=(8, 8, 8, 8), steps: int = 9000, lr: float = 2e-3,
                batch_size: int = 48, crop: int = 96, seed: int = 0, log=functools.partial(print, flush=True),
                **network) -> None:
    """`network`: MelFSQ's shape besides the levels (channels, kernel, encoder_layers, decoder_layers)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    filters_np = mel_filterbank()
    filters = torch.from_numpy(filters_np)
    train, held_out = speech(audio_shards[:-1], filters_np), speech(audio_shards[-1:], filters_np)
    frames = torch.cat([m for m, _ in train])
    log(f"codec: {len(frames)} training frames in {len(train)} utterances, {len(held_out)} held out, "
        f"{int(np.prod(levels))} codes, network {network or 'default'}")
    net = MelFSQ(levels, **network)
    net.mel_mean.copy_(frames.mean(0))
    net.mel_std.copy_(frames.std(0) + 1e-3)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    best, started = (float("inf"), None), time.time()
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = loss_of(net, filters, *batch(rng.sample(train, min(batch_size, len(train))), crop, rng))
        if not torch.isfinite(loss):
            raise SystemExit(f"codec: the loss diverged at step {step} (a deeper or wider network may need a lower lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 250 == 0 or step == steps:
            held = held_out_loss(net, filters, held_out)
            log(f"codec step {step}: loss {loss.item():.3f}, held-out {held:.3f}, {time.time() - started:.0f} s")
            if held < best[0]:
                best = (held, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    net.eval()
    tmp = out.with_name(out.name + ".tmp")
    save_fsq_codec(tmp, filters_np, net, code_mels(net, train, filters))
    tmp.rename(out)
    log(f"codec: kept held-out loss {best[0]:.3f}, wrote {out}")


def main() -> None:
    from demo.data import CODEC_SHARDS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=".cache/demo", help="demo.data's cache: v2/audio")
    parser.add_argument("--shards", type=int, default=CODEC_SHARDS, help="audio shards; the last is held out")
    parser.add_argument("--out", default=".cache/demo/codec", help="a new codec folder (demo.data's is <data>/codec)")
    parser.add_argument("--levels", default="8,8,8,8", help="FSQ levels; their product is the number of codes")
    parser.add_argument("--steps", type=int, default=9000)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--encoder-layers", type=int, default=2)
    parser.add_argument("--decoder-layers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = [Path(args.cache) / "v2" / "audio" / f"shard{i:05d}.npz" for i in range(args.shards)]
    if missing := [p for p in paths if not p.exists()]:
        raise SystemExit(f"{len(missing)} audio shards missing (first {missing[0]}): python -m demo.data makes them")
    train_codec(paths, Path(args.out), tuple(int(v) for v in args.levels.split(",")), args.steps,
                channels=args.channels, kernel=args.kernel, encoder_layers=args.encoder_layers,
                decoder_layers=args.decoder_layers)


if __name__ == "__main__":
    main()
