"""Stage 2: learn the demo codec from the first speech shards, then measure its round trip.

k-means (torch, k-means++-style seeding from a random sample) on log-mel frames gives the
codebook; each code's decoder spectrum is the magnitude spectrum of a real training frame: the
medoid (the frame nearest the centroid, keeps harmonics sharp) or the mean of its frames
(smoother, more whispery). `--compare` decodes held-out speech both ways and reports Whisper WER.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from demo.sentences import is_held_out
from demo.speech import CODEC_SHARDS
from llasa_core.demo_codec import DemoMelCodec, magnitudes, mel_filterbank, nearest, save_codec


def codec_audio(cache: Path):
    """(texts, audios, mels) of the shards that kept their audio."""
    texts, audios, mels = [], [], []
    for index in range(CODEC_SHARDS):
        shard = np.load(cache / "speech" / f"shard{index:05d}.npz")
        offsets = np.cumsum([0, *shard["audio_lengths"]])
        mel_offsets = np.cumsum([0, *shard["lengths"]])
        for i, text in enumerate(shard["texts"]):
            texts.append(str(text))
            audios.append(shard["audio"][offsets[i]: offsets[i + 1]].astype(np.float32) / 32767)
            mels.append(shard["mels"][mel_offsets[i]: mel_offsets[i + 1]].astype(np.float32))
    return texts, audios, mels


def kmeans(frames: np.ndarray, k: int, iterations: int, seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(frames)
    centroids = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for step in range(iterations):
        assign = torch.from_numpy(nearest(frames, centroids.numpy()))
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        # Re-seed empty codes on random frames so the whole codebook is used.
        refill = x[torch.randint(len(x), (int(empty.sum()),), generator=generator)]
        centroids[empty] = refill
        print(f"k-means step {step}: {int(empty.sum())} empty codes", flush=True)
    return centroids.numpy()


def decoder_spectra(audios, mels, centroids: np.ndarray, how: str) -> np.ndarray:
    mags = np.concatenate([magnitudes(a) for a in audios])
    frames = np.concatenate(mels)
    assign = nearest(frames, centroids)
    k = len(centroids)
    if how == "mean":
        sums = np.zeros((k, mags.shape[1]))
        np.add.at(sums, assign, mags)
        counts = np.bincount(assign, minlength=k)
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    distance = ((frames - centroids[assign]) ** 2).sum(1)
    best = np.full(k, np.inf)
    medoid = np.zeros(k, dtype=np.int64)
    for i in np.argsort(-distance):  # the last write per code is its nearest frame
        best[assign[i]] = distance[i]
        medoid[assign[i]] = i
    return mags[medoid].astype(np.float32)


def round_trip_wer(codec_path: Path, texts, audios, transcriber) -> tuple[float, float]:
    from verifiers.asr import error_rate

    codec = DemoMelCodec(str(codec_path))
    decoded = codec.decode([codec.encode(a) for a in audios])
    plain = transcriber.transcribe(audios, "en")
    coded = transcriber.transcribe(decoded, "en")
    wer = lambda hyps: float(np.mean([error_rate(t, h, "en")[1] for t, h in zip(texts, hyps)]))
    return wer(plain), wer(coded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", default=".cache/demo")
    parser.add_argument("--codes", type=int, default=2048)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--spectra", choices=["medoid", "mean"], default="medoid")
    parser.add_argument("--compare", action="store_true", help="measure both decoder spectra")
    parser.add_argument("--force", action="store_true", help="retrain even if a codec exists (new codes!)")
    args = parser.parse_args()
    cache = Path(args.cache)
    out = cache / "codec"
    if (out / "current").exists() and not args.force:
        print(f"{out / 'current'} exists; the LM's codes depend on it (--force to retrain)")
        return
    texts, audios, mels = codec_audio(cache)
    train = [i for i, t in enumerate(texts) if not is_held_out(t)]
    held = [i for i, t in enumerate(texts) if is_held_out(t)][:24]
    started = time.time()
    centroids = kmeans(np.concatenate([mels[i] for i in train]), args.codes, args.iterations)
    filters = mel_filterbank()
    print(f"k-means: {time.time() - started:.0f} s", flush=True)
    from verifiers.asr import FasterWhisperTranscriber

    transcriber = FasterWhisperTranscriber()
    report = {}
    for how in (["medoid", "mean"] if args.compare else [args.spectra]):
        spectra = decoder_spectra([audios[i] for i in train], [mels[i] for i in train], centroids, how)
        save_codec(out / how, filters, centroids, spectra)
        plain, coded = round_trip_wer(out / how, [texts[i] for i in held], [audios[i] for i in held], transcriber)
        report[how] = {"wer_unquantised": plain, "wer_round_trip": coded}
        print(how, report[how], flush=True)
    best = min(report, key=lambda h: report[h]["wer_round_trip"])
    (out / "current").unlink(missing_ok=True)
    (out / "current").symlink_to(best)
    (out / "report.json").write_text(json.dumps({"chosen": best, **report}, indent=2))


if __name__ == "__main__":
    main()
