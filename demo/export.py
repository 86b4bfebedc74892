"""The last stage: the data's codec, the best LM checkpoint and a default voice as one model folder.

    python -m demo.export [--lm .cache/demo/lm-v2/best] [--out .cache/demo/candidate]

The default output is a candidate beside the cache; bench it (`python -m bench.bench_demo --model
.cache/demo/candidate`) and only if it beats the committed model, export again with
`--out models/llasa-demo`.

The default voice (voice.npz, the voice store's format; serve_config.yaml's lm.default_voice)
speaks requests that bring no reference. Without one the model picks a voice per sample, half the
time its deep one, which judges hear worst (models/llasa-demo/README.md); with it, one voice
answers every request. It is Joe, the voice every other one is made from, saying one
sentence no training item says, made as the training speech is (piper, WORLD resynthesis, peak
level) and encoded by the codec.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

VOICE_FILE = "voice.npz"
VOICE_TEXT = "Thank you for calling. How can I help you today?"


def default_voice(codec_folder: Path):
    from demo.data import load_piper, speak
    from demo.voices import VOICES, transform
    from deployments.config import EMBEDDED_CODEC
    from deployments.voices import Voice
    from llasa_core.codec import load_codec
    from llasa_core.demo_codec import peak_normalise

    joe = next(v for v in VOICES if v.name == "joe")
    audio = peak_normalise(transform(speak(load_piper(0), VOICE_TEXT, 1.0, 0.667, 0.8), joe))
    codes = load_codec(str(codec_folder)).encode(audio)
    return Voice(name=joe.name, transcript=VOICE_TEXT, audio=audio, codes=list(codes), codec=EMBEDDED_CODEC,
                 created_at=int(time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="demo/data", help="its codec/ is the one the LM's codes are of")
    parser.add_argument("--lm", default=".cache/demo/lm-v2/best")
    parser.add_argument("--out", default=".cache/demo/candidate")
    args = parser.parse_args()
    from deployments.voices import voice_to_bytes

    out = Path(args.out)
    for source, target in ((Path(args.data) / "codec", out / "codec"), (Path(args.lm), out / "lm")):
        if target.resolve() == source.resolve():
            continue  # e.g. a new voice.npz for the committed model: --lm models/llasa-demo/lm --out models/llasa-demo
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source.resolve(), target)
    (out / VOICE_FILE).write_bytes(voice_to_bytes(default_voice(out / "codec")))
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    for name, size in sizes.items():
        print(f"{size / 1e6:8.2f} MB  {name}")
    print(f"{sum(sizes.values()) / 1e6:8.2f} MB  total")


if __name__ == "__main__":
    main()
