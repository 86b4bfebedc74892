"""ASR ensembles on real piper speech: Whisper tiny.en and pocketsphinx combined by mean or min."""

from __future__ import annotations

from functools import lru_cache

import pytest
from pydantic import ValidationError
from verifier_fixtures import SENTENCES, contexts, corpus

from llasa_core.stages import VerifierScore
from verifiers import VerifierConfig, build_verifier
from verifiers.ensemble import EnsembleVerifier

MEMBERS = ({"backend": "faster-whisper", "options": {"cpu_threads": 1}}, {"backend": "pocketsphinx"})
WRONG = "Seven purple elephants were dancing on the roof of the old museum."


@lru_cache(maxsize=None)
def ensemble(combine: str):
    return build_verifier({"name": "asr", "kind": "asr", "backend": "ensemble", "combine": combine, "members": MEMBERS})


def test_ensemble_combines_its_members_by_mean_and_min():
    speech = corpus()
    texts = SENTENCES[:3]
    waves = [speech[t] for t in texts] * 2
    ctx = contexts(list(texts) + [WRONG] * 3)
    mean, low = ensemble("mean").score(waves, ctx), ensemble("min").score(waves, ctx)
    for m, n in zip(mean, low):
        members = m.detail["members"]
        assert set(members) == {"asr.0.faster-whisper", "asr.1.pocketsphinx"}
        scores = [v["score"] for v in members.values()]
        assert m.score == pytest.approx(sum(scores) / 2) and n.score == pytest.approx(min(scores))
        assert all(isinstance(v["transcript"], str) for v in members.values())
        assert m.metric == "wer" and m.raw == pytest.approx(sum(v["raw"] for v in members.values()) / 2)
    for right, wrong in zip(mean[:3], mean[3:]):
        assert right.score >= 0.75 and wrong.score <= 0.15


class _Fixed:
    """A member with fixed verdicts, to check how the combination treats a missing score."""

    def __init__(self, verdict: VerifierScore):
        self.verdict = verdict

    def score(self, waveforms, contexts):
        return [self.verdict] * len(waveforms)


def test_a_member_that_does_not_apply_is_left_out():
    speech = corpus()[SENTENCES[0]]
    skip = _Fixed(VerifierScore(None, "wer", reason="no model for language 'zh'"))
    half = _Fixed(VerifierScore(0.5, "wer", raw=0.5))
    [one] = EnsembleVerifier({"a": skip, "b": half}, "e", "min").score([speech], contexts(["x"]))
    assert one.score == 0.5 and "no model" in one.reason
    [none] = EnsembleVerifier({"a": skip, "b": skip}, "e").score([speech], contexts(["x"]))
    assert none.score is None and none.reason


@pytest.mark.parametrize(
    "config, message",
    [
        ({"backend": "ensemble", "members": [{"backend": "pocketsphinx"}]}, "at least two"),
        ({"backend": "ensemble", "members": [{"backend": "pocketsphinx"}, {"backend": "kaldi"}]}, "unknown asr backend"),
        ({"backend": "ensemble", "members": [{"backend": "pocketsphinx"}] * 2, "combine": "max"}, "combine"),
        ({"backend": "pocketsphinx", "members": [{"backend": "pocketsphinx"}] * 2}, "ensemble' only"),
    ],
)
def test_bad_ensemble_configs_fail_with_clear_errors(config, message):
    with pytest.raises(ValidationError, match=message):
        VerifierConfig.model_validate({"name": "asr", "kind": "asr", **config})
