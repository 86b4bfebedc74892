"""Are the demo voices distinct, and does the codec keep them apart? Measured, written to JSON.

    python -m demo.check_voices [--data demo/data] [--cache .cache/demo] [--per-voice 8]

Speaker embeddings are the project's speaker verifier's (resemblyzer, verifiers/speaker.py).
For each pair of voices: the mean cosine between their utterances (within one voice: between
different utterances). The training voices' utterances come from demo.data's codec shards (or,
with `--fresh`, are synthesised here like the held-out voice's, seeded, so that a codec is judged
on speech it did not learn from). With `--codec` (default: the data's codec, if it
exists) the same through the codec's round trip, each coded voice against its own unquantised
speech and against Joe's, and the round trip's WER per voice (Whisper tiny.en, each utterance's
capped at 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from demo.data import CODEC_SHARDS, load_audio_shard, load_piper, speak
from demo.sentences import MixedSentenceMaker
from demo.voices import HELD_OUT_VOICE, VOICES, Voice, transform
from llasa_core.demo_codec import peak_normalise


def cosines(embeddings: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    unit = {k: e / np.linalg.norm(e, axis=1, keepdims=True) for k, e in embeddings.items()}
    table = {}
    for a in unit:
        table[a] = {}
        for b in unit:
            s = unit[a] @ unit[b].T
            table[a][b] = float((s[~np.eye(len(s), dtype=bool)] if a == b else s).mean())
    return table


def show(title: str, table: dict[str, dict[str, float]]) -> None:
    print(title)
    print("        " + " ".join(f"{n:>7}" for n in table))
    for a, row in table.items():
        print(f"{a:>7} " + " ".join(f"{v:7.3f}" for v in row.values()))


def fresh_speech(voice: Voice, count: int, seed: int = 777) -> tuple[list[str], list[np.ndarray]]:
    """`count` prose or question items in `voice`, synthesised here (none is in the data)."""
    maker, piper = MixedSentenceMaker(seed=seed), load_piper(seed)
    texts, audios = [], []
    while len(texts) < count:
        kind, text = maker.item()
        if kind in ("prose", "question"):
            texts.append(text)
            audios.append(peak_normalise(transform(speak(piper, text, 1.0 / voice.tempo, 0.667, 0.8), voice)))
    return texts, audios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="demo/data")
    parser.add_argument("--cache", default=".cache/demo")
    parser.add_argument("--codec", default=None, help="default: <data>/codec if it exists")
    parser.add_argument("--per-voice", type=int, default=8)
    parser.add_argument("--fresh", action="store_true",
                        help="every voice's utterances synthesised here, not the codec's training shards'")
    parser.add_argument("--out", default=None, help="default: <data>/voices.json")
    args = parser.parse_args()
    from verifiers.speaker import ResemblyzerEmbedder

    texts: dict[str, list[str]] = {v.name: [] for v in VOICES}
    audios: dict[str, list[np.ndarray]] = {v.name: [] for v in VOICES}
    for index, voice in enumerate(VOICES if args.fresh else ()):
        texts[voice.name], audios[voice.name] = fresh_speech(voice, args.per_voice, seed=778 + index)
    for index in range(0 if args.fresh else CODEC_SHARDS):
        path = Path(args.cache) / "v2" / "audio" / f"shard{index:05d}.npz"
        if not path.exists():
            break
        shard = load_audio_shard(path)
        for text, kind, voice, audio in zip(shard["texts"], shard["kinds"], shard["voices"], shard["audio"]):
            if kind in ("prose", "question") and len(audios[voice]) < args.per_voice:
                texts[voice].append(text)
                audios[voice].append(audio)
    texts[HELD_OUT_VOICE.name], audios[HELD_OUT_VOICE.name] = fresh_speech(HELD_OUT_VOICE, args.per_voice)
    embedder = ResemblyzerEmbedder()
    raw = {name: embedder.embed(a) for name, a in audios.items() if a}
    report = {"utterances_per_voice": {k: len(v) for k, v in audios.items()}, "unquantised": cosines(raw)}
    show("speaker cosine, unquantised speech", report["unquantised"])

    codec_path = Path(args.codec or Path(args.data) / "codec")
    if codec_path.exists():
        from llasa_core.codec import load_codec
        from verifiers.asr import FasterWhisperTranscriber, error_rate

        codec = load_codec(str(codec_path))
        coded_audio = {name: codec.decode([codec.encode(a) for a in audios[name]]) for name in raw}
        coded = {name: embedder.embed(a) for name, a in coded_audio.items()}
        report["codec"] = str(codec_path)
        report["round_trip"] = cosines(coded)
        show(f"speaker cosine, through {codec_path}", report["round_trip"])
        unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)
        whisper = FasterWhisperTranscriber()
        report["per_voice"] = {}
        for name in raw:
            # Capped at 1 per utterance: Whisper sometimes loops on one clip (a WER of 20).
            wer = lambda audio: float(np.mean([min(1.0, error_rate(t, h, "en")[1]) for t, h in zip(texts[name], whisper.transcribe(audio, "en"))]))
            report["per_voice"][name] = {
                "coded_vs_own_unquantised": float((unit(coded[name]) @ unit(raw[name]).T).mean()),
                "coded_vs_joe_unquantised": float((unit(coded[name]) @ unit(raw["joe"]).T).mean()),
                "wer_unquantised": wer(audios[name]), "wer_round_trip": wer(coded_audio[name]),
            }
            print(name, {k: round(v, 3) for k, v in report["per_voice"][name].items()}, flush=True)
    out = Path(args.out or Path(args.data) / "voices.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
