"""`python -m protos.generate`: regenerate the Python modules of every .proto under protos/.

Run from the repository root after editing a .proto; tests/test_serve_protos.py fails when the
checked-in modules differ from what this writes. Paths are relative to the repository root, so
the generated imports read `from protos.llasa.tts.v1 import tts_pb2`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted(p.relative_to(ROOT) for p in (ROOT / "protos").rglob("*.proto"))


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Write the *_pb2.py, *_pb2.pyi and *_pb2_grpc.py of every proto under `out_dir`."""
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *map(str, PROTOS)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return [out_dir / p.with_name(p.stem + suffix) for p in PROTOS for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
