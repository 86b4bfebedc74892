"""Optional text front ends a checkpoint can declare (public Llasa checkpoints declare none).

A front end maps user text to what the LM was trained to read. A checkpoint opts in with a
`llasa_frontend.json` file, e.g. `{"name": "<registered name>", ...options}`, beside its
tokenizer; the registry below maps names to factories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

TextFrontend = Callable[[str], str]

FRONTENDS: dict[str, Callable[..., TextFrontend]] = {}


def load_frontend(model: str) -> TextFrontend | None:
    """The front end declared by a local checkpoint, or None (hub ids and plain checkpoints)."""
    from .prompt import FRONTEND_FILE

    path = Path(model) / FRONTEND_FILE
    if not path.is_file():
        return None
    spec = json.loads(path.read_text())
    name = spec.pop("name", None)
    if name not in FRONTENDS:
        raise ValueError(f"{path} declares text front end {name!r}; known: {sorted(FRONTENDS)}")
    return FRONTENDS[name](**spec)


def espeak_phonemes(voice: str = "en-us") -> TextFrontend:
    """Text -> IPA phonemes by espeak-ng as piper-tts bundles it (the demo checkpoint's input).

    Piper's own phonemiser, so the demo LM reads exactly what its training speech was made from.
    Sentences are joined by a space; stress marks and punctuation are kept.
    """
    from piper.phonemize_espeak import EspeakPhonemizer

    phonemizer = EspeakPhonemizer()

    def phonemise(text: str) -> str:
        return " ".join("".join(sentence) for sentence in phonemizer.phonemize(voice, text)).strip()

    return phonemise


FRONTENDS["espeak-phonemes"] = espeak_phonemes
