"""funasr backends (optional extra `funasr`): Paraformer ASR and emotion2vec, end to end on tiny
randomly initialised models in funasr's own local-directory format (config.yaml, model.pt,
tokens.json), loaded by `funasr.AutoModel(model=<dir>)` exactly as a downloaded checkpoint is.
The architectures are the real ones (SANM encoder, CIF predictor, SANM decoder; data2vec-style
audio encoder), only tiny. What this cannot show offline: the real checkpoints' accuracy."""

from __future__ import annotations

import json

import pytest
from verifier_fixtures import SENTENCES, assert_same_scores, contexts, corpus, other_voice

pytest.importorskip("funasr")

from verifiers import build_verifier  # noqa: E402

PARAFORMER_CONFIG = """\
model: Paraformer
model_conf:
  ctc_weight: 0.0
  lsm_weight: 0.1
  length_normalized_loss: true
  predictor_weight: 1.0
  predictor_bias: 1
  sampling_ratio: 0.75
encoder: SANMEncoder
encoder_conf:
  output_size: 16
  attention_heads: 2
  linear_units: 32
  num_blocks: 1
  dropout_rate: 0.0
  positional_dropout_rate: 0.0
  attention_dropout_rate: 0.0
  input_layer: pe
  pos_enc_class: SinusoidalPositionEncoder
  normalize_before: true
  kernel_size: 11
  sanm_shfit: 0
  selfattention_layer_type: sanm
decoder: ParaformerSANMDecoder
decoder_conf:
  attention_heads: 2
  linear_units: 32
  num_blocks: 1
  dropout_rate: 0.0
  positional_dropout_rate: 0.0
  self_attention_dropout_rate: 0.0
  src_attention_dropout_rate: 0.0
  att_layer_num: 1
  kernel_size: 11
  sanm_shfit: 0
predictor: CifPredictorV2
predictor_conf:
  idim: 16
  threshold: 1.0
  l_order: 1
  r_order: 1
  tail_threshold: 0.45
frontend: WavFrontend
frontend_conf:
  fs: 16000
  window: hamming
  n_mels: 80
  frame_length: 25
  frame_shift: 10
  lfr_m: 7
  lfr_n: 6
tokenizer: CharTokenizer
tokenizer_conf:
  unk_symbol: <unk>
"""

EMOTION2VEC_CONFIG = """\
model: Emotion2vec
model_conf:
  loss_beta: 0.0
  loss_scale: null
  depth: 1
  start_drop_path_rate: 0.0
  end_drop_path_rate: 0.0
  num_heads: 2
  norm_eps: 1.0e-05
  norm_affine: true
  encoder_dropout: 0.0
  post_mlp_drop: 0.0
  attention_dropout: 0.0
  activation_dropout: 0.0
  dropout_input: 0.0
  layerdrop: 0.0
  embed_dim: 16
  mlp_ratio: 2.0
  layer_norm_first: false
  average_top_k_layers: 1
  end_of_block_targets: false
  clone_batch: 1
  normalize: true
  modalities:
    audio:
      type: AUDIO
      prenet_depth: 1
      prenet_layerdrop: 0.0
      prenet_dropout: 0.0
      start_drop_path_rate: 0.0
      end_drop_path_rate: 0.0
      num_extra_tokens: 0
      init_extra_token_zero: true
      mask_noise_std: 0.01
      mask_prob_min: null
      inverse_mask: false
      mask_prob: 0.0
      mask_prob_adjust: 0.0
      keep_masked_pct: 0.0
      mask_length: 5
      add_masks: false
      remove_masks: false
      mask_dropout: 0.0
      encoder_zero_mask: true
      mask_channel_prob: 0.0
      mask_channel_length: 64
      local_grad_mult: 1.0
      use_alibi_encoder: true
      alibi_scale: 1.0
      learned_alibi: false
      alibi_max_pos: null
      learned_alibi_scale: true
      learned_alibi_scale_per_head: true
      learned_alibi_scale_per_layer: false
      num_alibi_heads: 2
      model_depth: 1
      decoder: null
      extractor_mode: layer_norm
      feature_encoder_spec: '[(16, 10, 5), (16, 8, 4), (16, 4, 2), (16, 4, 2), (16, 2, 2)]'
      conv_pos_width: 15
      conv_pos_groups: 2
      conv_pos_depth: 1
      conv_pos_pre_ln: false
tokenizer: null
frontend: null
"""


def _funasr_dir(path, config: str, tokens: list[str] | None = None) -> str:
    """Write config.yaml, then model.pt with the freshly initialised weights funasr builds from it."""
    import torch
    from funasr import AutoModel

    (path / "config.yaml").write_text(config)
    if tokens is not None:
        (path / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False))
    torch.save({}, path / "model.pt")  # funasr builds the model, then loads what matches (nothing)
    torch.manual_seed(0)
    model = AutoModel(model=str(path), device="cpu", disable_update=True, disable_pbar=True, log_level="ERROR")
    torch.save(model.model.state_dict(), path / "model.pt")
    return str(path)


@pytest.fixture(scope="module")
def tiny_paraformer(tmp_path_factory):
    tokens = ["<blank>", "<s>", "</s>", *"今天气很好不是的我你他", "<unk>"]
    return _funasr_dir(tmp_path_factory.mktemp("tiny-paraformer"), PARAFORMER_CONFIG, tokens)


@pytest.fixture(scope="module")
def tiny_emotion2vec(tmp_path_factory):
    return _funasr_dir(tmp_path_factory.mktemp("tiny-emotion2vec"), EMOTION2VEC_CONFIG)


def test_paraformer_backend_end_to_end_on_tiny_checkpoint(tiny_paraformer):
    v = build_verifier({"name": "asr_zh", "kind": "asr", "backend": "paraformer", "model": tiny_paraformer})
    speech = corpus()
    waves = [speech[t] for t in SENTENCES[:2]]
    batch = v.score(waves, contexts(["今天天气很好"] * 2, language="zh"))
    from verifiers.asr import error_rate

    for result in batch:
        transcript = result.detail["transcript"]
        assert set(transcript) <= set("今天气很好不是的我你他 ")
        metric, cer = error_rate("今天天气很好", transcript, "zh")  # the score is the transcript's own CER
        assert (result.metric, result.raw) == (metric, pytest.approx(cer))
        assert result.score == pytest.approx(max(0.0, 1.0 - cer))
    # No batch-vs-single equality here: this random tiny Paraformer's logits are near ties, and
    # funasr's CPU inference flips some of them from call to call even for one clip on its own.


def test_emotion2vec_backend_end_to_end_on_tiny_checkpoint(tiny_emotion2vec):
    v = build_verifier({"name": "emotion", "kind": "emotion", "model": tiny_emotion2vec})
    speech = corpus()
    reference = speech[SENTENCES[0]]
    waves = [reference, speech[SENTENCES[1]], other_voice(speech[SENTENCES[2]])]
    batch = v.score(waves, contexts(["x"] * 3, reference=reference))
    assert batch[0].raw == pytest.approx(1.0, abs=1e-5) and batch[0].metric == "emo_sim"
    assert all(r.score == pytest.approx(min(1.0, max(0.0, r.raw))) for r in batch)  # score = clip(cosine, 0, 1)
    assert_same_scores(batch, [v.score([w], contexts(["x"], reference=reference))[0] for w in waves])
    [skipped] = v.score([waves[1]], contexts(["x"]))
    assert skipped.score is None and "no reference" in skipped.reason
