"""Speaker-similarity verifier on real piper speech: the embedded resemblyzer default, and the
WavLM (transformers) and WeSpeaker (ONNX) backends on tiny models of their real formats."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from verifier_fixtures import SENTENCES, assert_same_scores, bad_waveforms, contexts, corpus, other_voice

from verifiers import build_verifier

TEXT = "unused by the speaker verifier"


@lru_cache(maxsize=None)
def verifier(backend: str = "resemblyzer", model: str | None = None):
    return build_verifier({"name": "speaker", "kind": "speaker", "backend": backend, "model": model})


def test_same_voice_scores_higher_than_a_clearly_different_voice():
    speech = corpus()
    reference = speech[SENTENCES[0]]
    same = [speech[t] for t in SENTENCES[1:4]]
    different = [other_voice(a) for a in same]
    results = verifier().score(same + different, contexts([TEXT] * 6, reference=reference))
    same_sim = [r.raw for r in results[:3]]
    diff_sim = [r.raw for r in results[3:]]
    assert min(same_sim) >= 0.8, same_sim
    assert max(diff_sim) <= min(same_sim) - 0.2, (same_sim, diff_sim)
    assert all(r.metric == "sim" and r.score == pytest.approx(min(1.0, max(0.0, r.raw))) for r in results)


def test_batch_scores_as_one_by_one_and_reference_is_embedded_once():
    speech = corpus()
    v = build_verifier({"name": "speaker", "kind": "speaker"})
    reference = speech[SENTENCES[4]]
    waves = [speech[SENTENCES[5]], other_voice(speech[SENTENCES[6]]), speech[SENTENCES[7]]]
    batch = v.score(waves, contexts([TEXT] * 3, reference=reference))
    assert v.reference_embeddings == 1
    single = [v.score([w], contexts([TEXT], reference=reference.copy()))[0] for w in waves]
    assert v.reference_embeddings == 1  # same samples, new array: served by the content hash
    assert_same_scores(batch, single)


def test_no_reference_or_unusable_reference_skips_with_a_reason():
    speech = corpus()
    wave = speech[SENTENCES[0]]
    [none] = verifier().score([wave], contexts([TEXT]))
    assert none.score is None and "no reference" in none.reason
    [silent] = verifier().score([wave], contexts([TEXT], reference=np.zeros(16_000, dtype=np.float32)))
    assert silent.score is None and "reference voice unusable: silent" in silent.reason


def test_bad_candidates_get_worst_score_with_reason_never_a_crash():
    speech = corpus()
    bad = bad_waveforms()
    reference = speech[SENTENCES[0]]
    clipped = 1.02 * speech[SENTENCES[1]] / np.max(np.abs(speech[SENTENCES[1]]))  # overshoot: clipped and scored
    results = verifier().score([*bad.values(), clipped], contexts([TEXT] * (len(bad) + 1), reference=reference))
    for name, result in zip(bad, results):
        assert result.score == 0.0 and result.reason, (name, result)
    assert results[-1].detail.get("clipped") and results[-1].score > 0.5


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    """A WavLMForXVector checkpoint (config, safetensors, feature extractor) of tiny size."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    path = tmp_path_factory.mktemp("tiny-wavlm")
    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 64), conv_kernel=(10, 64), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", num_buckets=16, max_bucket_distance=64,
        tdnn_dim=(16, 16), tdnn_kernel=(3, 1), tdnn_dilation=(1, 1), xvector_output_dim=8,
    )
    WavLMForXVector(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_wespeaker_onnx(tmp_path_factory):
    """An ONNX model with WeSpeaker's layout: input `feats` (batch, frames, 80 fbank bins), output
    `embs` (batch, dim), dynamic batch and frames; statistics pooling as in WeSpeaker's TSTP."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.frame = torch.nn.Linear(80, 32)
            self.out = torch.nn.Linear(64, 16)

        def forward(self, feats):
            h = torch.relu(self.frame(feats))
            return self.out(torch.cat([h.mean(dim=1), h.std(dim=1)], dim=-1))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-wespeaker") / "model.onnx"
    torch.onnx.export(
        Tiny().eval(), (torch.randn(1, 200, 80),), str(path), input_names=["feats"], output_names=["embs"],
        dynamic_axes={"feats": {0: "B", 1: "T"}, "embs": {0: "B"}}, dynamo=False,
    )
    return str(path)


@pytest.mark.parametrize("backend", ["wavlm", "wespeaker-onnx"])
def test_hub_format_backends_end_to_end_on_tiny_models(backend, request):
    model = request.getfixturevalue({"wavlm": "tiny_wavlm", "wespeaker-onnx": "tiny_wespeaker_onnx"}[backend])
    v = verifier(backend, model)
    speech = corpus()
    reference = speech[SENTENCES[0]]
    waves = [reference, speech[SENTENCES[1]], other_voice(speech[SENTENCES[2]])]
    batch = v.score(waves, contexts([TEXT] * 3, reference=reference))
    assert batch[0].raw == pytest.approx(1.0, abs=1e-5)  # the reference against itself
    assert all(0.0 <= r.score <= 1.0 and -1.0 <= r.raw <= 1.0 for r in batch)
    assert_same_scores(batch, [v.score([w], contexts([TEXT], reference=reference))[0] for w in waves])
