"""Build verifiers from config: name, kind, backend, model (hub id or local path), device, weight.

`model=None` means the backend's embedded weights (shipped inside a registry package); backends
without embedded weights require `model`. Backend `ensemble` combines two or more `members` (each
a config of the same kind without name) by `combine` (mean | min): `verifiers/ensemble.py`. The combination across verifiers (weighted mean over
those that scored, weights renormalised) lives in `llasa_core.search.scoring`; this module
validates the names and weights it is given.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from verifiers.asr import AsrVerifier, FasterWhisperTranscriber, ParaformerTranscriber, PocketSphinxTranscriber, WhisperTranscriber
from verifiers.judge import whisper_base_dir
from verifiers.similarity import SimilarityVerifier

Kind = Literal["asr", "speaker", "emotion"]

# kind -> backend -> needs a model id/path (True) or has embedded weights (False)
BACKENDS: dict[str, dict[str, bool]] = {
    "asr": {"faster-whisper": False, "whisper": True, "paraformer": True, "pocketsphinx": False, "ensemble": False,
            "whisper-base-judge": False},
    "speaker": {"resemblyzer": False, "wavlm": True, "wespeaker-onnx": True, "ensemble": False},
    "emotion": {"emotion2vec": True, "ensemble": False},
}
DEFAULT_BACKEND = {"asr": "faster-whisper", "speaker": "resemblyzer", "emotion": "emotion2vec"}


class VerifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    kind: Kind
    backend: str | None = None  # None: DEFAULT_BACKEND[kind]
    model: str | None = None  # hub id or local path; None: the backend's embedded weights
    device: str = "cpu"
    weight: float = Field(default=1.0, gt=0)
    min_seconds: float | None = Field(default=None, ge=0)  # None: the verifier's default
    max_seconds: float | None = Field(default=None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)  # extra backend arguments, e.g. compute_type
    # kind asr: weight of the ASR's confidence in the target text (verifiers/asr.py); None: the default
    confidence_weight: float | None = Field(default=None, ge=0, lt=1)
    members: tuple[dict[str, Any], ...] = ()  # backend "ensemble": the models it combines
    combine: Literal["mean", "min"] = "mean"  # backend "ensemble": how their scores combine

    @model_validator(mode="after")
    def _check_backend(self) -> "VerifierConfig":
        backend = self.backend or DEFAULT_BACKEND[self.kind]
        known = BACKENDS[self.kind]
        if backend not in known:
            raise ValueError(f"verifier {self.name!r}: unknown {self.kind} backend {backend!r}; choose one of {sorted(known)}")
        if known[backend] and not self.model:
            raise ValueError(f"verifier {self.name!r}: backend {backend!r} needs `model` (a hub id or a local path)")
        object.__setattr__(self, "backend", backend)
        if self.confidence_weight is not None and (self.kind != "asr" or backend == "ensemble"):
            raise ValueError(f"verifier {self.name!r}: confidence_weight is for an ASR verifier (set it on an "
                             "ensemble's members)")
        if backend == "ensemble":
            if len(self.members) < 2:
                raise ValueError(f"verifier {self.name!r}: an ensemble needs at least two `members`, got {len(self.members)}")
            for member in self.member_configs():
                if member.backend == "ensemble":
                    raise ValueError(f"verifier {self.name!r}: ensemble members cannot be ensembles")
        elif self.members:
            raise ValueError(f"verifier {self.name!r}: `members` is for backend 'ensemble' only")
        return self

    def member_configs(self) -> list["VerifierConfig"]:
        """Each member as a full config of the ensemble's kind, named `<ensemble>.<i>.<backend>`."""
        return [VerifierConfig.model_validate({"kind": self.kind, "device": self.device, **m,
                                               "name": f"{self.name}.{i}.{m.get('backend') or DEFAULT_BACKEND[self.kind]}"})
                for i, m in enumerate(self.members)]


DEFAULT_VERIFIERS = (
    VerifierConfig(name="asr", kind="asr"),
    VerifierConfig(name="speaker", kind="speaker"),
)


def validate_configs(configs: list[VerifierConfig | dict]) -> list[VerifierConfig]:
    """Parse and check a verifier list: at least one, unique names (weights > 0 per config)."""
    parsed = [c if isinstance(c, VerifierConfig) else VerifierConfig.model_validate(c) for c in configs]
    if not parsed:
        raise ValueError("no verifiers configured; give at least one")
    names = [c.name for c in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate verifier names: {duplicates}")
    return parsed


def validate_weights(weights: dict[str, float], configured: list[str] | set[str]) -> dict[str, float]:
    """Check per-request weights: every name configured, every weight positive."""
    unknown = sorted(set(weights) - set(configured))
    if unknown:
        raise ValueError(f"unknown verifier names {unknown}; configured: {sorted(configured)}")
    bad = {n: w for n, w in weights.items() if not w > 0}
    if bad:
        raise ValueError(f"verifier weights must be positive, got {bad}")
    return dict(weights)


def build_verifier(config: VerifierConfig | dict):
    """The verifier object a config describes (loads the model)."""
    c = config if isinstance(config, VerifierConfig) else VerifierConfig.model_validate(config)
    limits = {k: v for k, v in (("min_seconds", c.min_seconds), ("max_seconds", c.max_seconds)) if v is not None}
    if c.backend == "ensemble":
        from verifiers.ensemble import EnsembleVerifier

        members = {m.name: build_verifier(m.model_copy(update=limits)) for m in c.member_configs()}
        return EnsembleVerifier(members, name=c.name, combine=c.combine)
    if c.kind == "asr":
        transcriber = {
            "faster-whisper": lambda: FasterWhisperTranscriber(c.model, device=c.device, **c.options),
            "whisper": lambda: WhisperTranscriber(c.model, device=c.device, **c.options),
            "paraformer": lambda: ParaformerTranscriber(c.model, device=c.device, **c.options),
            "pocketsphinx": lambda: PocketSphinxTranscriber(c.model, **c.options),
            "whisper-base-judge": lambda: FasterWhisperTranscriber(str(whisper_base_dir()), device=c.device, **c.options),
        }[c.backend]()
        weight = c.confidence_weight
        if weight is None and c.backend == "whisper-base-judge":
            weight = 0.0  # the judge reports plain accuracy, the figure a reader compares
        return AsrVerifier(transcriber, name=c.name, confidence_weight=weight, **limits)
    if c.kind == "speaker":
        from verifiers import speaker

        embedder = {
            "resemblyzer": lambda: speaker.ResemblyzerEmbedder(device=c.device, **c.options),
            "wavlm": lambda: speaker.WavLMEmbedder(c.model, device=c.device, **c.options),
            "wespeaker-onnx": lambda: speaker.WespeakerOnnxEmbedder(c.model, device=c.device, **c.options),
        }[c.backend]()
        return SimilarityVerifier(embedder, name=c.name, metric="sim", **limits)
    from verifiers.emotion import Emotion2vecEmbedder

    return SimilarityVerifier(Emotion2vecEmbedder(c.model, device=c.device, **c.options), name=c.name, metric="emo_sim", **limits)


def build_verifiers(configs: list[VerifierConfig | dict]) -> dict[str, Any]:
    """{name: verifier} for a validated list of configs."""
    return {c.name: build_verifier(c) for c in validate_configs(configs)}
