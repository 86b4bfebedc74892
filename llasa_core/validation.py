"""Input that would only waste compute is refused before any stage runs.

Text must hold something a voice can say; a reference voice must hold enough speech to clone.
Every refusal is an `InputError` whose message says what to send instead. The thresholds are
module constants, chosen on piper speech and on the bad references listed in the tests.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import webrtcvad
from scipy.signal import stft

from .audio import SAMPLE_RATE


class InputError(ValueError):
    """Input that cannot be synthesised or cloned; the message says what to change."""


# A reference voice needs at least this much audio, and this much of it voiced (webrtcvad), so
# the codec has a voice to encode: Llasa's own examples use 3-15 s references.
MIN_REFERENCE_SECONDS = 1.0
MIN_VOICED_SECONDS = 0.5
# Below this RMS level (dBFS) a reference is silence or line noise, whatever VAD says of it.
MIN_REFERENCE_DBFS = -45.0
_VAD_FRAME = 480  # 30 ms at 16 kHz, one of webrtcvad's frame sizes
_VAD_AGGRESSIVENESS = 3  # the strictest mode: noise is least often called speech
# webrtcvad calls steady broadband noise speech, so noise is told by its flat spectrum: the
# spectral flatness of the most tonal quarter of the louder frames is about 0.001 for clean
# piper speech, 0.16-0.29 with white noise as loud as the speech, and 0.55 for white noise alone.
MAX_SPECTRAL_FLATNESS = 0.4


def check_text(text: str, field: str = "text") -> None:
    """Refuse text with nothing to speak: only punctuation, symbols, dashes or invisible characters.

    Speakable means a letter or a digit in any script (Unicode categories L* and N*): every
    front end (raw text for Llasa, espeak phonemes for the demo model) reads those.
    """
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        raise InputError(
            f"{field} has nothing to speak (only punctuation, symbols, spaces or invisible characters): "
            "send words or numbers"
        )


def check_reference(audio: np.ndarray, field: str = "reference.audio") -> None:
    """Refuse a 16 kHz mono reference too short, too quiet or without enough speech to clone."""
    seconds = len(audio) / SAMPLE_RATE
    if seconds < MIN_REFERENCE_SECONDS:
        raise InputError(f"{field} is {seconds:.2f} s long; a reference voice needs at least "
                         f"{MIN_REFERENCE_SECONDS:g} s of speech (3-15 s clones best)")
    level = rms_dbfs(audio)
    if level < MIN_REFERENCE_DBFS:
        raise InputError(f"{field} is silent or nearly so ({level:.0f} dBFS RMS, the least this server "
                         f"takes is {MIN_REFERENCE_DBFS:g} dBFS): send a recording of the voice speaking")
    flatness = spectral_flatness(audio)
    if flatness > MAX_SPECTRAL_FLATNESS:
        raise InputError(f"{field} sounds like noise, not a voice (spectral flatness {flatness:.2f}, over "
                         f"{MAX_SPECTRAL_FLATNESS:g}): send a recording of the voice speaking")
    voiced = voiced_seconds(audio)
    if voiced < MIN_VOICED_SECONDS:
        raise InputError(f"{field} has {voiced:.2f} s of speech by voice activity detection, under the "
                         f"{MIN_VOICED_SECONDS:g} s a voice needs: send a recording of the voice speaking")


def rms_dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20 * np.log10(max(rms, 1e-10))


def spectral_flatness(audio: np.ndarray) -> float:
    """Flatness (geometric over arithmetic mean of the power spectrum) of the more tonal frames:
    the 25th percentile over the louder half of 32 ms frames. Near 0 for voices, near 0.55 for
    white noise."""
    _, _, spectrum = stft(audio, SAMPLE_RATE, nperseg=512)
    power = np.abs(spectrum) ** 2 + 1e-12
    flatness = np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)
    energy = np.mean(power, axis=0)
    return float(np.percentile(flatness[energy >= np.median(energy)], 25))


def voiced_seconds(audio: np.ndarray) -> float:
    """Seconds that webrtcvad calls speech, after peak-normalising (VAD judges shape, not level)."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak == 0.0:
        return 0.0
    pcm = (np.clip(audio / peak, -1.0, 1.0) * 32767).astype("<i2")
    vad = webrtcvad.Vad(_VAD_AGGRESSIVENESS)
    frames = len(pcm) // _VAD_FRAME
    voiced = sum(vad.is_speech(pcm[i * _VAD_FRAME:(i + 1) * _VAD_FRAME].tobytes(), SAMPLE_RATE)
                 for i in range(frames))
    return voiced * _VAD_FRAME / SAMPLE_RATE
