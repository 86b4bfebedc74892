"""Speech understanding models as scorers (plain Python, no Ray): ASR error rate, speaker and
emotion similarity. Each verifier has `.name` and a batched `.score(waveforms, contexts)` that
returns one `llasa_core.stages.VerifierScore` per 16 kHz mono float32 waveform. See README.md."""

from verifiers.asr import AsrVerifier, error_rate
from verifiers.registry import (
    BACKENDS,
    DEFAULT_VERIFIERS,
    VerifierConfig,
    build_verifier,
    build_verifiers,
    validate_configs,
    validate_weights,
)
from verifiers.similarity import SimilarityVerifier

__all__ = [
    "AsrVerifier",
    "BACKENDS",
    "DEFAULT_VERIFIERS",
    "SimilarityVerifier",
    "VerifierConfig",
    "build_verifier",
    "build_verifiers",
    "error_rate",
    "validate_configs",
    "validate_weights",
]
