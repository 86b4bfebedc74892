"""Stage 5: copy the chosen codec and the best LM checkpoint into the committed model folder."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", default=".cache/demo")
    parser.add_argument("--out", default="models/llasa-demo")
    args = parser.parse_args()
    cache, out = Path(args.cache), Path(args.out)
    for source, target in ((cache / "codec" / "current", out / "codec"), (cache / "lm" / "best", out / "lm")):
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source.resolve(), target)
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    for name, size in sizes.items():
        print(f"{size / 1e6:8.2f} MB  {name}")
    print(f"{sum(sizes.values()) / 1e6:8.2f} MB  total")


if __name__ == "__main__":
    main()
