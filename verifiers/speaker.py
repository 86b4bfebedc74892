"""Speaker embedders for the speaker-similarity verifier (`SimilarityVerifier`, metric "sim").

- resemblyzer (embedded default): the GE2E voice encoder whose weights ship in the resemblyzer
  package; 256-dim, CPU friendly.
- wavlm: transformers WavLMForXVector, e.g. microsoft/wavlm-base-plus-sv (hub id or local path).
- wespeaker-onnx: WeSpeaker's published ONNX models (input `feats` (batch, frames, mels) of
  kaldi fbank with mean normalisation, output `embs`), run by onnxruntime with kaldi-native-fbank
  features; the wespeaker PyPI packages ship no weights and need torchaudio.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from llasa_core.audio import SAMPLE_RATE


class ResemblyzerEmbedder:
    """GE2E embeddings as resemblyzer's `embed_utterance` makes them (the mean of unit partial
    embeddings over 1.6 s windows), with the windows of every clip in the batch through the LSTM
    as one batch: the windows have one fixed length, so nothing is padded."""

    def __init__(self, device: str = "cpu"):
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device=device, verbose=False)

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        from resemblyzer import audio as mel_audio
        from resemblyzer import preprocess_wav

        trimmed = preprocess_wav(audio, source_sr=SAMPLE_RATE)  # volume normalised, long pauses cut
        wav = trimmed if trimmed.size >= SAMPLE_RATE // 10 else audio
        wav_slices, mel_slices = self.encoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        wav = np.pad(wav, (0, max(0, wav_slices[-1].stop - len(wav))))
        mel = mel_audio.wav_to_mel_spectrogram(wav)
        return np.array([mel[s] for s in mel_slices])

    def embed(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        windows = [self._windows(audio) for audio in audios]
        with torch.no_grad():
            partials = self.encoder(torch.from_numpy(np.concatenate(windows)).to(self.encoder.device)).cpu().numpy()
        bounds = np.cumsum([0] + [len(w) for w in windows])
        means = np.stack([partials[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
        return means / np.linalg.norm(means, axis=1, keepdims=True)


class WavLMEmbedder:
    """x-vectors of a WavLMForXVector checkpoint; the batch is padded and masked."""

    def __init__(self, model: str, device: str = "cpu"):
        from transformers import AutoFeatureExtractor, WavLMForXVector

        self.device = device
        self.features = AutoFeatureExtractor.from_pretrained(model)
        self.model = WavLMForXVector.from_pretrained(model).to(device).eval()

    def embed(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        inputs = self.features(
            list(audios), sampling_rate=SAMPLE_RATE, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        with torch.inference_mode():
            out = self.model(**inputs.to(self.device))
        return out.embeddings.float().cpu().numpy()


class WespeakerOnnxEmbedder:
    """A WeSpeaker ONNX export. Features as in wespeaker's own inference: 16-bit-scaled samples,
    kaldi fbank (25 ms hamming frames every 10 ms, no dither), mean normalised over time. Clips
    have different lengths, so each runs on its own."""

    def __init__(self, model: str, device: str = "cpu"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(model, options, providers=providers)
        feats = self.session.get_inputs()[0]
        self.input_name = feats.name
        self.num_mels = feats.shape[-1] if isinstance(feats.shape[-1], int) else 80
        self.output_name = self.session.get_outputs()[0].name

    def _fbank(self, audio: np.ndarray) -> np.ndarray:
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = SAMPLE_RATE
        opts.frame_opts.dither = 0.0
        opts.frame_opts.window_type = "hamming"
        opts.mel_opts.num_bins = self.num_mels
        opts.energy_floor = 0.0
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(SAMPLE_RATE, (audio * 32768.0).astype(np.float32))
        fbank.input_finished()
        feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
        return (feats - feats.mean(axis=0, keepdims=True)).astype(np.float32)

    def embed(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [self.session.run([self.output_name], {self.input_name: self._fbank(a)[None]})[0] for a in audios]
        )
