"""Verifier configs: validation errors a person can act on, and building the embedded default."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from verifier_fixtures import SENTENCES, contexts, corpus

from verifiers import DEFAULT_VERIFIERS, VerifierConfig, build_verifiers, validate_configs, validate_weights


@pytest.mark.parametrize(
    "config, message",
    [
        ({"name": "a", "kind": "asr", "backend": "kaldi"}, "unknown asr backend 'kaldi'"),
        ({"name": "a", "kind": "speaker", "backend": "whisper"}, "unknown speaker backend"),
        ({"name": "a", "kind": "asr", "backend": "whisper"}, "needs `model`"),
        ({"name": "e", "kind": "emotion"}, "needs `model`"),
        ({"name": "a", "kind": "asr", "weight": 0}, "greater than 0"),
        ({"name": "a", "kind": "asr", "weight": -1}, "greater than 0"),
        ({"name": "a", "kind": "pitch"}, "kind"),
        ({"name": "", "kind": "asr"}, "name"),
        ({"name": "a", "kind": "asr", "modle": "x"}, "modle"),
    ],
)
def test_invalid_configs_fail_with_clear_errors(config, message):
    with pytest.raises(ValidationError, match=message):
        VerifierConfig.model_validate(config)


def test_list_and_weight_validation():
    with pytest.raises(ValueError, match="duplicate verifier names: \\['asr'\\]"):
        validate_configs([{"name": "asr", "kind": "asr"}, {"name": "asr", "kind": "speaker"}])
    with pytest.raises(ValueError, match="at least one"):
        validate_configs([])
    assert validate_weights({"asr": 2.0}, ["asr", "speaker"]) == {"asr": 2.0}
    with pytest.raises(ValueError, match="unknown verifier names \\['wer'\\]"):
        validate_weights({"wer": 1.0}, ["asr", "speaker"])
    with pytest.raises(ValueError, match="positive"):
        validate_weights({"asr": 0.0}, ["asr"])
    assert VerifierConfig(name="s", kind="speaker").backend == "resemblyzer"


def test_embedded_default_builds_and_scores_offline():
    built = build_verifiers(list(DEFAULT_VERIFIERS))
    assert set(built) == {"asr", "speaker"}
    speech = corpus()
    wave, reference = speech[SENTENCES[0]], speech[SENTENCES[1]]
    [asr] = built["asr"].score([wave], contexts([SENTENCES[0]]))
    [sim] = built["speaker"].score([wave], contexts([SENTENCES[0]], reference=reference))
    [skipped] = built["speaker"].score([wave], contexts([SENTENCES[0]]))
    assert asr.score > 0.8 and sim.score > 0.8 and skipped.score is None
