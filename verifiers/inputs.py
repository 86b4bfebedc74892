"""Input checks shared by all verifiers: every waveform gets a defined result, never a crash.

Verifiers take 16 kHz mono float32 (the project's format; `llasa_core.audio.read_audio` and
`to_mono_16k` convert anything else at the boundary). Per item, audio a verifier cannot judge gets
the worst score (0.0) with a reason, so a search simply ranks that candidate last:

- empty, NaN/inf samples, silence (peak below -80 dBFS), shorter than `min_seconds`, longer than
  `max_seconds`: score 0.0, reason says which.
- not speech: noise or a tone whose level stays within `STATIONARY_DB` from loud to quiet frames
  (the 90th and 10th percentiles of 20 ms frame levels; piper and demo-model speech spread 25-38
  dB, speech under loud white noise 9-13 dB, white / pink / brown noise 0.8 / 3.6 / 6.2 dB, a
  hum 0): score 0.0, so a verifier that would hear words in noise or find a voice in it cannot
  rank it high.
- clipped: more than `CLIPPED_FRACTION` of the samples at or beyond full scale (|x| >= 0.99):
  score 0.0. A few samples past +-1 (resampling overshoot) are clipped to [-1, 1] and scored;
  the detail says so. Integer PCM is scaled to [-1, 1]; (frames, channels) audio is downmixed.

A batch whose waveform and context counts differ is a caller bug and raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from llasa_core.audio import SAMPLE_RATE
from llasa_core.stages import ScoreContext, VerifierScore

SILENCE_PEAK = 1e-4  # -80 dBFS
STATIONARY_DB = 8.0  # level spread (dB) below which audio is noise or a tone, not speech
CLIPPED_FRACTION = 0.01  # share of samples at full scale above which audio counts as clipped
FULL_SCALE = 0.99


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
    at_full_scale = float(np.mean(np.abs(audio) >= FULL_SCALE))
    if at_full_scale > CLIPPED_FRACTION:
        return Checked(None, f"clipped audio: {100 * at_full_scale:.1f} % of samples at full scale")
    spread = level_spread_db(audio)
    if spread < STATIONARY_DB:
        return Checked(None, f"not speech: the level varies only {spread:.1f} dB (noise or a tone)")
    detail = {}
    if peak > 1.0:
        audio = np.clip(audio, -1.0, 1.0)
        detail["clipped"] = True
    return Checked(audio, detail=detail)


def level_spread_db(audio: np.ndarray, frame: int = SAMPLE_RATE // 50) -> float:
    """dB between the loud (90th percentile) and quiet (10th) 20 ms frames, over frames within
    60 dB of the loudest: syllables and pauses make speech spread far more than steady noise."""
    count = audio.size // frame
    if count < 5:  # under 0.1 s: too short to tell
        return float("inf")
    frames = audio[: count * frame].reshape(count, frame)
    levels = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)
    levels = levels[levels > levels.max() - 60]
    return float(np.percentile(levels, 90) - np.percentile(levels, 10))


def check_batch(waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> None:
    if len(waveforms) != len(contexts):
        raise ValueError(f"got {len(waveforms)} waveforms but {len(contexts)} contexts; pass one context per waveform")


def worst(metric: str, reason: str, raw: float | None = None) -> VerifierScore:
    """The score of a candidate that cannot be judged: 0.0, ranked last."""
    return VerifierScore(score=0.0, metric=metric, raw=raw, reason=reason)
