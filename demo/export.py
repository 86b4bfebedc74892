"""Stage 3: the data's codec and the best LM checkpoint as one model folder (lm/ + codec/).

    python -m demo.export [--lm .cache/demo/lm-v2/best] [--out .cache/demo/candidate]

The default output is a candidate beside the cache; bench it (`python -m bench.bench_demo --model
.cache/demo/candidate`) and only if it beats the committed model, export again with
`--out models/llasa-demo`.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="demo/data", help="its codec/ is the one the LM's codes are of")
    parser.add_argument("--lm", default=".cache/demo/lm-v2/best")
    parser.add_argument("--out", default=".cache/demo/candidate")
    args = parser.parse_args()
    out = Path(args.out)
    for source, target in ((Path(args.data) / "codec", out / "codec"), (Path(args.lm), out / "lm")):
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source.resolve(), target)
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    for name, size in sizes.items():
        print(f"{size / 1e6:8.2f} MB  {name}")
    print(f"{sum(sizes.values()) / 1e6:8.2f} MB  total")


if __name__ == "__main__":
    main()
