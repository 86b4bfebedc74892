"""The embedded demo codec: one codebook of log-mel frames, 16 kHz, 50 tokens/s.

Encode: 80-bin log-mel frames (n_fft 1024, hop 320) -> nearest of K centroids (k-means).
Decode: each code's mean linear magnitude spectrum (measured on training speech, so no mel
inversion is needed) -> fast Griffin-Lim (momentum 0.99) from a fixed phase, so decoding is
deterministic, then a fixed gain. No network: small enough to ship in the repo, fast enough for CPU search.

A checkpoint is a folder with `llasa_codec.json` ({"name": "demo-mel-vq", ...}) and
`codebook.safetensors` (mel filterbank, centroids, magnitudes); `load_codec` opens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from .audio import SAMPLE_RATE

NAME = "demo-mel-vq"
N_FFT = 1024
HOP = 320
N_MELS = 80
LOG_FLOOR = 1e-5
# Decoded audio gets this fixed gain, not a per-utterance peak normalisation, so that a window
# decoded on its own (the search decodes a step at a time) comes out at the level of a whole
# decode. Griffin-Lim from the code magnitudes peaks at 0.53-0.82 on the bench prose: x 1.2 puts
# that near the 0.9 peak of the training speech.
OUTPUT_GAIN = 1.2


def peak_normalise(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Piper's training speech is peak-normalised; reference voices are brought to the same level."""
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * (peak / top)).astype(np.float32) if top > 0 else audio.astype(np.float32)


def magnitudes(audio: np.ndarray) -> np.ndarray:
    """(frames, N_FFT // 2 + 1) linear STFT magnitudes, one frame per 320 samples."""
    frames = len(audio) // HOP
    if frames == 0:
        return np.zeros((0, N_FFT // 2 + 1), dtype=np.float32)
    spec = torch.stft(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), N_FFT, HOP,
                      window=torch.hann_window(N_FFT), center=True, return_complex=True)
    return spec.abs().T[:frames].numpy()


def log_mel(mags: np.ndarray, mel_filters: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(mags @ mel_filters.T, LOG_FLOOR)).astype(np.float32)


def mel_filterbank() -> np.ndarray:
    """Slaney mel filters (librosa); computed once at training time and stored in the codebook."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


def nearest(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared L2) for each row."""
    x = torch.from_numpy(features)
    c = torch.from_numpy(centroids)
    distances = (c * c).sum(1)[None] - 2 * x @ c.T
    return distances.argmin(1).numpy()


def griffin_lim(mags: np.ndarray, iterations: int, momentum: float = 0.99) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al. 2013) from zero phase; (frames, bins) -> waveform."""
    window = torch.hann_window(N_FFT)
    target = torch.from_numpy(mags.T.astype(np.float32))  # (bins, frames)
    length = mags.shape[0] * HOP
    angles = torch.ones_like(target, dtype=torch.complex64)
    previous = torch.zeros_like(angles)
    for _ in range(iterations):
        wave = torch.istft(target * angles, N_FFT, HOP, window=window, center=True, length=length)
        rebuilt = torch.stft(wave, N_FFT, HOP, window=window, center=True, return_complex=True)
        rebuilt = rebuilt[:, : target.shape[1]]
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / angles.abs().clamp_min(1e-8)
        previous = rebuilt
    wave = torch.istft(target * angles, N_FFT, HOP, window=window, center=True, length=length)
    return wave.numpy().astype(np.float32)


class DemoMelCodec:
    """Codec protocol: encode(audio) -> codes, decode(batch of codes) -> waveforms."""

    sample_rate = SAMPLE_RATE
    samples_per_token = HOP

    def __init__(self, model: str, device: str = "cpu"):
        path = Path(model)
        spec = json.loads((path / "llasa_codec.json").read_text())
        tensors = load_file(str(path / "codebook.safetensors"))
        self.mel_filters = tensors["mel_filters"].astype(np.float32)
        self.centroids = tensors["centroids"].astype(np.float32)
        self.code_magnitudes = tensors["magnitudes"].astype(np.float32)
        self.iterations = int(spec.get("griffin_lim_iterations", 32))
        self.codebook_size = len(self.centroids)

    def features(self, audio: np.ndarray) -> np.ndarray:
        return log_mel(magnitudes(peak_normalise(audio)), self.mel_filters)

    def encode(self, audio: np.ndarray) -> list[int]:
        return nearest(self.features(audio), self.centroids).tolist()

    def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]:
        out = []
        for sequence in codes:
            if len(sequence) == 0:
                out.append(np.zeros(0, dtype=np.float32))
                continue
            frames = self.code_magnitudes[np.asarray(sequence)]
            # stft's centre padding needs more than N_FFT / 2 samples: a one-code candidate (EOS
            # after its first token) repeats its frame, and the wave is cut back to its length.
            short = max(0, N_FFT // (2 * HOP) + 1 - len(frames))
            wave = griffin_lim(np.concatenate([frames, frames[-1:].repeat(short, 0)]), self.iterations)
            out.append(np.clip(wave[: len(frames) * HOP] * OUTPUT_GAIN, -1.0, 1.0).astype(np.float32))
        return out


def save_codec(path: str | Path, mel_filters: np.ndarray, centroids: np.ndarray,
               code_magnitudes: np.ndarray, griffin_lim_iterations: int = 32) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "llasa_codec.json").write_text(json.dumps({
        "name": NAME, "sample_rate": SAMPLE_RATE, "hop_length": HOP, "n_fft": N_FFT,
        "n_mels": N_MELS, "codebook_size": len(centroids),
        "griffin_lim_iterations": griffin_lim_iterations,
    }, indent=2) + "\n")
    save_file({
        "mel_filters": mel_filters.astype(np.float32),
        "centroids": centroids.astype(np.float32),
        "magnitudes": code_magnitudes.astype(np.float16),
    }, str(path / "codebook.safetensors"))
    return path
