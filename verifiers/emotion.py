"""Emotion embedder for the emotion-similarity verifier (`SimilarityVerifier`, metric "emo_sim").

emotion2vec through funasr (optional extra `funasr`), as in the Llasa paper: the utterance-level
embedding of the candidate against that of the reference voice. No registry package ships
emotion2vec weights, so this verifier is not part of the embedded default.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class Emotion2vecEmbedder:
    def __init__(self, model: str, device: str = "cpu"):
        from funasr import AutoModel

        self.model = AutoModel(model=model, device=device, disable_update=True, disable_pbar=True, log_level="ERROR")

    def embed(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        results = [
            self.model.generate(audio, granularity="utterance", extract_embedding=True, disable_pbar=True)[0]
            for audio in audios
        ]
        return np.stack([np.asarray(r["feats"]).reshape(-1) for r in results])
