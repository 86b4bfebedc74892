"""The demo codecs: one codebook over 80-bin log-mel frames (n_fft 1024, hop 320), 16 kHz, 50 tokens/s,
decoded to linear magnitude spectra and then by fast Griffin-Lim (momentum 0.99) from a fixed
phase (deterministic), then a fixed gain. Small enough to ship in the repo, fast enough for CPU search.

- `DemoMelCodec` ("demo-mel-vq", the embedded model's): each frame -> the nearest of K centroids
  (k-means); each code -> its mean magnitude spectrum on training speech. No network.
- `DemoFSQCodec` ("demo-mel-fsq", demo data v2's): `MelFSQ`, a small convolutional encoder and
  decoder around finite scalar quantisation, so that each code is chosen, and decoded, knowing
  its neighbours. Over several voices the k-means table loses words: each code decodes to one
  mean over the pitches and vocal tracts that share it (models/llasa-demo/README.md).

A checkpoint is a folder with `llasa_codec.json` ({"name": ..., ...}) and `codebook.safetensors`;
`load_codec` opens it.
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


def spectra_to_audio(frames: np.ndarray, iterations: int) -> np.ndarray:
    """(frames, bins) linear magnitudes -> the waveform of exactly frames x HOP samples."""
    # stft's centre padding needs more than N_FFT / 2 samples: a one-code candidate (EOS after its
    # first token) repeats its frame, and the wave is cut back to its length.
    short = max(0, N_FFT // (2 * HOP) + 1 - len(frames))
    wave = griffin_lim(np.concatenate([frames, frames[-1:].repeat(short, 0)]), iterations)
    return np.clip(wave[: len(frames) * HOP] * OUTPUT_GAIN, -1.0, 1.0).astype(np.float32)


class _SpectralCodec:
    """What both demo codecs share: the checkpoint folder, log-mel features, and decoding each
    sequence's linear magnitude spectra (`spectra`, each codec's own) by Griffin-Lim."""

    sample_rate = SAMPLE_RATE
    samples_per_token = HOP

    def _open(self, model: str) -> tuple[dict, dict]:
        """(llasa_codec.json, codebook.safetensors' tensors); keeps what every codec reads."""
        path = Path(model)
        spec = json.loads((path / "llasa_codec.json").read_text())
        tensors = load_file(str(path / "codebook.safetensors"))
        self.mel_filters = tensors["mel_filters"].astype(np.float32)
        self.iterations = int(spec.get("griffin_lim_iterations", 32))
        return spec, tensors

    def features(self, audio: np.ndarray) -> np.ndarray:
        return log_mel(magnitudes(peak_normalise(audio)), self.mel_filters)

    def spectra(self, sequence: Sequence[int]) -> np.ndarray:
        """(frames, bins) linear magnitudes of one non-empty code sequence."""
        raise NotImplementedError

    def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return [spectra_to_audio(self.spectra(sequence), self.iterations) if len(sequence)
                else np.zeros(0, dtype=np.float32) for sequence in codes]


class DemoMelCodec(_SpectralCodec):
    """Codec protocol: encode(audio) -> codes, decode(batch of codes) -> waveforms."""

    def __init__(self, model: str, device: str = "cpu"):
        _, tensors = self._open(model)
        self.centroids = tensors["centroids"].astype(np.float32)
        self.code_magnitudes = tensors["magnitudes"].astype(np.float32)
        self.codebook_size = len(self.centroids)

    def encode(self, audio: np.ndarray) -> list[int]:
        return nearest(self.features(audio), self.centroids).tolist()

    def spectra(self, sequence: Sequence[int]) -> np.ndarray:
        return self.code_magnitudes[np.asarray(sequence)]


FSQ_NAME = "demo-mel-fsq"


class MelFSQ(torch.nn.Module):
    """Log-mel frames -> one code per frame -> natural-log magnitude spectra.

    The encoder ends in len(levels) scalars per frame, each squashed into [0, L - 1] and rounded
    to an integer (finite scalar quantisation, Mentzer et al. 2023: no codebook to collapse;
    the rounding passes gradients straight through); the code is that point of the grid, so
    there are prod(levels) codes. Encoder and decoder are residual 1-D convolutions of width
    `kernel`. `mask` (batch, frames) zeroes a batch's padding after every layer, so a padded
    sequence comes out as it would alone.
    """

    def __init__(self, levels=(8, 8, 8, 8), channels: int = 256, kernel: int = 5, encoder_layers: int = 2,
                 decoder_layers: int = 3):
        super().__init__()
        conv = lambda a, b, k=kernel: torch.nn.Conv1d(a, b, k, padding=k // 2)
        self.encoder_in, self.encoder_out = conv(N_MELS, channels), conv(channels, len(levels), 1)
        self.encoder = torch.nn.ModuleList(conv(channels, channels) for _ in range(encoder_layers))
        self.decoder_in, self.decoder_out = conv(len(levels), channels), conv(channels, N_FFT // 2 + 1, 1)
        self.decoder = torch.nn.ModuleList(conv(channels, channels) for _ in range(decoder_layers))
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))
        self.register_buffer("place", torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.float32), 0))
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))

    def shape(self) -> dict:
        return {"levels": [int(v) for v in self.levels], "channels": self.encoder_in.out_channels,
                "kernel": self.encoder_in.kernel_size[0], "encoder_layers": len(self.encoder),
                "decoder_layers": len(self.decoder)}

    @staticmethod
    def _residual(x, layers, first, last, keep):
        x = torch.nn.functional.gelu(first(x)) * keep
        for layer in layers:
            x = (x + torch.nn.functional.gelu(layer(x))) * keep
        return last(x)

    def quantise(self, mels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, frames, N_MELS) log-mel -> (batch, frames, len(levels)) grid points (integers)."""
        keep = (torch.ones(mels.shape[:2]) if mask is None else mask.float())[:, None]
        x = ((mels - self.mel_mean) / self.mel_std).transpose(1, 2) * keep
        z = torch.sigmoid(self._residual(x, self.encoder, self.encoder_in, self.encoder_out, keep)).transpose(1, 2)
        z = z * (self.levels - 1)
        return z + (torch.round(z) - z).detach()

    def codes(self, points: torch.Tensor) -> torch.Tensor:
        return (points.round() * self.place).sum(-1).long()

    def points(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.floor(codes[..., None].float() / self.place) % self.levels

    def decode(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, frames, len(levels)) grid points -> (batch, frames, bins) log magnitudes."""
        keep = (torch.ones(points.shape[:2]) if mask is None else mask.float())[:, None]
        x = (points / (self.levels - 1) * 2 - 1).transpose(1, 2) * keep
        return self._residual(x, self.decoder, self.decoder_in, self.decoder_out, keep).transpose(1, 2)


class DemoFSQCodec(_SpectralCodec):
    """Codec protocol around `MelFSQ`. `code_mels`: each code's mean log-mel frame on the training
    speech (what demo.align reads a code as)."""

    def __init__(self, model: str, device: str = "cpu"):
        spec, tensors = self._open(model)
        self.code_mels = tensors["code_mels"].astype(np.float32)
        self.net = MelFSQ(**spec["network"])
        self.net.load_state_dict({k.removeprefix("net."): torch.from_numpy(v.astype(np.float32))
                                  for k, v in tensors.items() if k.startswith("net.")})
        self.net.eval()
        self.codebook_size = int(np.prod(spec["network"]["levels"]))

    @torch.inference_mode()
    def encode_features(self, mels: np.ndarray) -> np.ndarray:
        """(frames, N_MELS) log-mel -> (frames,) codes."""
        if len(mels) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.net.codes(self.net.quantise(torch.from_numpy(np.asarray(mels, dtype=np.float32))[None]))[0].numpy()

    def encode(self, audio: np.ndarray) -> list[int]:
        return self.encode_features(self.features(audio)).tolist()

    @torch.inference_mode()
    def spectra(self, sequence: Sequence[int]) -> np.ndarray:
        points = self.net.points(torch.as_tensor(np.asarray(sequence, dtype=np.int64))[None])
        return self.net.decode(points)[0].exp().numpy()


def save_fsq_codec(path: str | Path, mel_filters: np.ndarray, net: MelFSQ, code_mels: np.ndarray,
                   griffin_lim_iterations: int = 32) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "llasa_codec.json").write_text(json.dumps({
        "name": FSQ_NAME, "sample_rate": SAMPLE_RATE, "hop_length": HOP, "n_fft": N_FFT, "n_mels": N_MELS,
        "codebook_size": len(code_mels), "griffin_lim_iterations": griffin_lim_iterations, "network": net.shape(),
    }, indent=2) + "\n")
    # float16 halves the file; codes are only ever made by the codec as loaded (weights rounded).
    tensors = {f"net.{k}": v.detach().float().numpy().astype(np.float16) for k, v in net.state_dict().items()}
    tensors.update(mel_filters=mel_filters.astype(np.float32), code_mels=code_mels.astype(np.float32))
    save_file(tensors, str(path / "codebook.safetensors"))
    return path
