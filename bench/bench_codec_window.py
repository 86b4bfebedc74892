"""How much left context a windowed codec decode needs: windowed vs whole decode, per codec.

    python -m bench.bench_codec_window [--sentences 8] [--contexts 0,10,25,50,100,150]

The search decodes each candidate's new codes once per step (`--step` tokens, 50 = 1 s) with a
window of earlier codes as left context, keeps only the new samples and crossfades the seam
(`llasa_core.codec.windowed_decode`). For each context length this prints, against a whole decode
of the same codes (piper speech of the bench prose, encoded by each codec):
- `snr_db`: waveform SNR. Meaningful for X-codec2 (its decoder is a network with a fixed phase
  head); the demo codec rebuilds phase by Griffin-Lim, whose phase depends on the whole window,
  so its waveform SNR stays low even when the audio sounds the same.
- `spec_snr_db`: SNR of STFT magnitudes (what a listener and an ASR hear).
- `judge_wer` (demo codec only; `--judge`): pocketsphinx WER of the windowed audio, beside the
  whole decode's.
- `decode_x`: codes decoded per code of audio (1 + context / step): the codec cost of the window.
Tiny X-codec2 is the random checkpoint of `llasa_core.tiny_checkpoints` (real architecture,
random weights), so its figures show how far the decoder's receptive field reaches, not quality.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from llasa_core.codec import load_codec, windowed_decode


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = reference - estimate
    return float(10 * np.log10((np.sum(reference**2) + 1e-12) / (np.sum(noise**2) + 1e-12)))


def magnitude(audio: np.ndarray) -> np.ndarray:
    return torch.stft(torch.from_numpy(audio), 512, 160, window=torch.hann_window(512), return_complex=True).abs().numpy()


def measure(codec, name: str, code_lists: list[list[int]], contexts: list[int], step: int, redo: int, judge) -> dict:
    whole = [codec.decode([codes])[0] for codes in code_lists]
    report = {"codec": name, "step_tokens": step, "redo_tokens": redo, "contexts": {}}
    if judge is not None:
        report["judge_wer_whole"] = judge(whole)
    for context in contexts:
        windowed = [windowed_decode(codec, codes, step, context, min(redo, context)) for codes in code_lists]
        row = {"redo_tokens": min(redo, context),
            "snr_db": float(np.mean([snr_db(w, x) for w, x in zip(whole, windowed)])),
            "spec_snr_db": float(np.mean([snr_db(magnitude(w), magnitude(x)) for w, x in zip(whole, windowed)])),
            "decode_x": 1 + context / step,
        }
        if judge is not None:
            row["judge_wer"] = judge(windowed)
        report["contexts"][context] = row
        print(name, context, json.dumps(row), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--contexts", default="0,10,25,50,100,150")
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--redo", type=int, default=0, help="context tokens decoded again (their audio replaced)")
    parser.add_argument("--judge", action="store_true", help="also pocketsphinx WER (demo codec)")
    parser.add_argument("--out", default="out/bench_codec_window.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from bench.bench_demo import PROSE
    from llasa_core.tiny_checkpoints import make_tiny_xcodec2
    from tests.verifier_fixtures import synthesize
    from verifiers.asr import PocketSphinxTranscriber, error_rate

    texts = list(PROSE[: args.sentences])
    speech = [synthesize(t) for t in texts]
    contexts = [int(c) for c in args.contexts.split(",")]
    judge = None
    if args.judge:
        sphinx = PocketSphinxTranscriber()
        judge = lambda audios: float(np.mean([error_rate(t, h, "en")[1]
                                              for t, h in zip(texts, sphinx.transcribe(audios, "en"))]))
    demo = load_codec("models/llasa-demo/codec")
    reports = [measure(demo, "demo", [demo.encode(a) for a in speech], contexts, args.step, args.redo, judge)]
    with tempfile.TemporaryDirectory() as tmp:
        xcodec = load_codec(str(make_tiny_xcodec2(Path(tmp) / "xcodec2")))
        # The tiny encoder maps all speech to one code (random weights): decode random codes of the
        # same lengths instead, which still shows how far the decoder's context reaches.
        rng = np.random.default_rng(0)
        random_codes = [rng.integers(0, 65_536, len(demo.encode(a))).tolist() for a in speech]
        reports.append(measure(xcodec, "tiny-xcodec2", random_codes, contexts, args.step, args.redo, None))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(reports, indent=2) + "\n")
    print(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
