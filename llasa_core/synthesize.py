"""`python -m llasa_core.synthesize "Hello" -o hello.wav`: one in-process synthesis.

Without --model/--codec it builds tiny random checkpoints in the real formats under
.cache/tiny (they speak noise; the embedded demo model replaces them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from .audio import write_wav
from .codec import load_codec
from .engine import LlasaTTS
from .lm import TransformersLM
from .search import SearchConfig
from .tiny_checkpoints import make_tiny_llasa, make_tiny_xcodec2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("text")
    parser.add_argument("-o", "--output", default="out.wav")
    parser.add_argument("--model", help="Llasa checkpoint (hub id or path)")
    parser.add_argument("--codec", help="X-codec2 checkpoint (hub id or path)")
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tiny = Path(".cache/tiny")
    if args.model is None and not (tiny / "llasa").exists():
        make_tiny_llasa(tiny / "llasa")
    if args.codec is None and not (tiny / "xcodec2").exists():
        make_tiny_xcodec2(tiny / "xcodec2")
    engine = LlasaTTS(
        TransformersLM(args.model or str(tiny / "llasa")), load_codec(args.codec or str(tiny / "xcodec2"))
    )
    config = SearchConfig(max_new_tokens=args.max_tokens, seed=args.seed)
    result = asyncio.run(engine.synthesize(args.text, config))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_wav(result.chosen.audio, args.output)
    account = result.account
    print(json.dumps({
        "output": args.output,
        "audio_seconds": len(result.chosen.audio) / engine.codec.sample_rate,
        "lm_prefill_tokens": account.lm_prefill_tokens,
        "lm_generated_tokens": account.lm_generated_tokens,
        "wall_seconds": round(account.wall_seconds, 3),
    }))


if __name__ == "__main__":
    main()
