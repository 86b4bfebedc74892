"""Non-speech audio: every embedded verifier gives silence, noise, a hum and hard-clipped speech
its worst score (0.0, finite) with a reason; never an exception, never a high score."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from verifier_fixtures import SENTENCES, contexts, corpus, non_speech

from verifiers import build_verifier
from verifiers.inputs import check_waveform, level_spread_db

CONFIGS = {
    "faster-whisper": {"kind": "asr", "options": {"cpu_threads": 1}},
    "pocketsphinx": {"kind": "asr", "backend": "pocketsphinx"},
    "asr-ensemble": {"kind": "asr", "backend": "ensemble", "combine": "mean",
                     "members": [{"backend": "faster-whisper", "options": {"cpu_threads": 1}}, {"backend": "pocketsphinx"}]},
    "resemblyzer": {"kind": "speaker"},
}


@lru_cache(maxsize=None)
def verifier(label: str):
    return build_verifier({"name": label, **CONFIGS[label]})


@pytest.mark.parametrize("label", CONFIGS)
def test_non_speech_gets_the_worst_score_with_a_reason(label):
    speech = corpus()
    reference = speech[SENTENCES[1]]
    bad = non_speech(speech[SENTENCES[0]])
    results = verifier(label).score(list(bad.values()), contexts([SENTENCES[0]] * len(bad), reference=reference))
    for name, result in zip(bad, results):
        assert result.score == 0.0 and math.isfinite(result.score) and result.reason, (name, result)
    [good] = verifier(label).score([speech[SENTENCES[0]]], contexts([SENTENCES[0]], reference=reference))
    assert good.score > 0.7


def test_real_speech_passes_the_checks_and_noise_does_not():
    """The thresholds keep a wide margin: piper speech spreads 25 dB or more, noise under 8;
    quiet speech over a noise floor 25 dB below it is still speech."""
    for text, audio in corpus().items():
        assert check_waveform(audio, 0.1, 120).audio is not None, text
        assert level_spread_db(audio) > 20
    reasons = {name: check_waveform(audio, 0.1, 120).reason for name, audio in non_speech(corpus()[SENTENCES[0]]).items()}
    assert reasons["silence"] == "silent audio" and "clipped" in reasons["clipped_speech"]
    assert all("not speech" in reasons[n] for n in ("white_noise", "pink_noise", "brown_noise", "hum"))
    quiet_speech = 0.01 * corpus()[SENTENCES[0]] + 0.0001 * np.random.default_rng(0).standard_normal(corpus()[SENTENCES[0]].size)
    assert check_waveform(quiet_speech.astype(np.float32), 0.1, 120).audio is not None
