"""Speech codecs: 16 kHz mono float32 audio <-> one stream of integer codes.

`XCodec2Codec` runs the real Llasa codec through transformers' own `Xcodec2Model`. Its feature
extractor computes the semantic encoder's fbank features with torchaudio, which has no CPU build
for the pinned torch, so `kaldi_fbank_features` computes the same Kaldi fbank with
kaldi-native-fbank.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol, Sequence

import kaldi_native_fbank as knf
import numpy as np
import torch

from .audio import CROSSFADE_SAMPLES, SAMPLE_RATE, continue_audio


class Codec(Protocol):
    sample_rate: int
    samples_per_token: int

    def encode(self, audio: np.ndarray) -> list[int]: ...

    def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]: ...


def kaldi_fbank_features(audio: np.ndarray, hop_length: int) -> np.ndarray:
    """X-codec2's semantic input: 80-bin Kaldi fbank, normalised per utterance, frames paired.

    Mirrors `Xcodec2FeatureExtractor` for one utterance: pad to a whole number of hops, pad half
    a hop each side, fbank at 25 ms / 10 ms (povey window, pre-emphasis 0.97), mean/variance
    normalise, then stack consecutive frame pairs into 160-dim vectors.
    """
    length = -(-(len(audio) + 1) // hop_length) * hop_length
    wave = np.zeros(length + hop_length, dtype=np.float32)
    wave[hop_length // 2 : hop_length // 2 + len(audio)] = audio
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = SAMPLE_RATE / 2
    opts.use_energy = False
    opts.use_log_fbank = True
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(SAMPLE_RATE, (wave * 32768.0).tolist())
    fbank.input_finished()
    frames = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    frames = (frames - frames.mean(0)) / np.sqrt(frames.var(0, ddof=1) + 1e-7)
    frames = frames[: len(frames) // 2 * 2]
    return frames.reshape(len(frames) // 2, 160).astype(np.float32)


def windowed_decode(codec: "Codec", codes: Sequence[int], step_tokens: int, context_tokens: int,
                    redo_tokens: int = 0, crossfade: int = CROSSFADE_SAMPLES) -> np.ndarray:
    """Decode `codes` as a search does: `step_tokens` new codes at a time, each with at most
    `context_tokens` earlier codes as left context, the last `redo_tokens` of them decoded again.
    For measuring a window against a whole decode."""
    audio = np.zeros(0, dtype=np.float32)
    for start in range(0, len(codes), step_tokens):
        stop = min(start + step_tokens, len(codes))
        left = max(0, start - context_tokens)
        window = codec.decode([list(codes[left:stop])])[0]
        audio = continue_audio(audio, window, stop - start, codec.samples_per_token,
                               min(redo_tokens, start - left), crossfade)
    return audio


class XCodec2Codec:
    """X-codec2 (FSQ, 65,536 codes, 50 tokens/s) from a hub id or a local path."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model: str, device: str = "cpu"):
        from transformers import Xcodec2Model

        self.device = torch.device(device)
        self.model = Xcodec2Model.from_pretrained(model).to(self.device).eval()
        self.samples_per_token = int(self.model.config.hop_length)

    @torch.inference_mode()
    def encode(self, audio: np.ndarray) -> list[int]:
        hop = self.samples_per_token
        padded = np.zeros(-(-(len(audio) + 1) // hop) * hop, dtype=np.float32)
        padded[: len(audio)] = audio
        values = torch.from_numpy(padded)[None, None].to(self.device)
        features = torch.from_numpy(kaldi_fbank_features(audio, hop))[None].to(self.device)
        codes = self.model.encode(values, input_features=features).audio_codes
        return codes[0, 0, : len(audio) // hop].tolist()

    @torch.inference_mode()
    def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Decode a batch; sequences of equal length share one forward pass.

        The decoder's transformer attends over the whole sequence, so padding a short sequence
        to a long one would change its audio: grouping by length keeps the batched result equal
        to decoding one by one (in a search step every candidate has the same length anyway).
        """
        out: list[np.ndarray | None] = [None] * len(codes)
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, sequence in enumerate(codes):
            by_length[len(sequence)].append(index)
        for length, indices in by_length.items():
            if length == 0:
                for i in indices:
                    out[i] = np.zeros(0, dtype=np.float32)
                continue
            batch = torch.tensor([list(codes[i]) for i in indices], device=self.device)[:, None, :]
            audio = self.model.decode(audio_codes=batch).audio_values[:, 0, : length * self.samples_per_token]
            for i, wave in zip(indices, audio.float().cpu().numpy()):
                out[i] = wave.astype(np.float32)
        return out  # type: ignore[return-value]


CODEC_FILE = "llasa_codec.json"
CODECS: dict[str, type] = {}  # name -> class(model_path, device) for codecs declared by CODEC_FILE


def _register_demo_codec() -> None:
    from .demo_codec import FSQ_NAME, NAME, DemoFSQCodec, DemoMelCodec

    CODECS[NAME] = DemoMelCodec
    CODECS[FSQ_NAME] = DemoFSQCodec


_register_demo_codec()


def load_codec(model: str, device: str = "cpu") -> Codec:
    """Open a codec checkpoint: X-codec2 (hub id or path) or one that declares its type.

    A local folder with `llasa_codec.json` ({"name": ...}) names a registered codec class (the
    embedded demo codec); anything else is loaded as transformers' Xcodec2Model, so swapping the
    demo codec for X-codec2 is a path change.
    """
    import json
    from pathlib import Path

    declared = Path(model) / CODEC_FILE
    if declared.is_file():
        name = json.loads(declared.read_text()).get("name")
        if name not in CODECS:
            raise ValueError(f"{declared} declares codec {name!r}; known: {sorted(CODECS)}")
        return CODECS[name](model, device=device)
    return XCodec2Codec(model, device=device)
