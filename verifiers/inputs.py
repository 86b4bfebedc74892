"""Input checks shared by all verifiers: every waveform gets a defined result, never a crash.

Verifiers take 16 kHz mono float32 (the project's format; `llasa_core.audio.read_audio` and
`to_mono_16k` convert anything else at the boundary). Per item, audio a verifier cannot judge gets
the worst score (0.0) with a reason, so a search simply ranks that candidate last:

- empty, NaN/inf samples, silence (peak below -80 dBFS), shorter than `min_seconds`, longer than
  `max_seconds`: score 0.0, reason says which.
- samples outside [-1, 1] (clipped or unnormalised float): clipped to [-1, 1] and scored; the
  detail says so. Integer PCM is scaled to [-1, 1]; (frames, channels) audio is downmixed.

A batch whose waveform and context counts differ is a caller bug and raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from llasa_core.audio import SAMPLE_RATE
from llasa_core.stages import ScoreContext, VerifierScore

SILENCE_PEAK = 1e-4  # -80 dBFS


@dataclass
class Checked:
    """A waveform ready for a model, or the reason it cannot be scored."""

    audio: np.ndarray | None
    reason: str = ""
    detail: dict = field(default_factory=dict)


def check_waveform(waveform: np.ndarray, min_seconds: float, max_seconds: float) -> Checked:
    audio = np.asarray(waveform)
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
    audio = audio.astype(np.float32, copy=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        return Checked(None, f"expected mono 16 kHz audio, got an array of shape {audio.shape}")
    if audio.size == 0:
        return Checked(None, "empty audio")
    if not np.all(np.isfinite(audio)):
        return Checked(None, "audio contains NaN or infinite samples")
    seconds = audio.size / SAMPLE_RATE
    if seconds < min_seconds:
        return Checked(None, f"audio too short: {seconds:.3f} s < {min_seconds} s")
    if seconds > max_seconds:
        return Checked(None, f"audio too long: {seconds:.1f} s > {max_seconds} s")
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        return Checked(None, "silent audio")
    detail = {}
    if peak > 1.0:
        audio = np.clip(audio, -1.0, 1.0)
        detail["clipped"] = True
    return Checked(audio, detail=detail)


def check_batch(waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> None:
    if len(waveforms) != len(contexts):
        raise ValueError(f"got {len(waveforms)} waveforms but {len(contexts)} contexts; pass one context per waveform")


def worst(metric: str, reason: str, raw: float | None = None) -> VerifierScore:
    """The score of a candidate that cannot be judged: 0.0, ranked last."""
    return VerifierScore(score=0.0, metric=metric, raw=raw, reason=reason)
