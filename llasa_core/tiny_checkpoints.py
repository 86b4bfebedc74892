"""Tiny randomly initialised checkpoints in the real Llasa and X-codec2 formats.

Tests, benchmarks and the placeholder default service load these through the same
`from_pretrained` path as HKUSTAudio/Llasa-1B and the X-codec2 checkpoint, so everything but the
weights is exercised offline. They speak noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Wav2Vec2BertConfig,
    Xcodec2Config,
    Xcodec2Model,
)

from .prompt import LLASA_SPECIAL_TOKENS, speech_token

LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
LLAMA3_SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                         "<|end_header_id|>", "<|eot_id|>")


def build_llasa_tokenizer(num_speech_tokens: int = 65_536, whole_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with Llama-3's chat tokens, then Llasa's, in Llasa's order.

    `whole_tokens` are strings kept as one token each instead of their UTF-8 bytes (the demo LM's
    IPA symbols), as a trained BPE's merges would keep them.
    """
    # alphabet() comes in hash-set order, different in every process: sorted, a rebuilt tokenizer
    # gives every byte the id it had (resuming training from saved weights depends on that).
    byte_vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>",
    )
    tokenizer.add_tokens(list(whole_tokens))
    tokenizer.add_special_tokens({"additional_special_tokens": list(LLAMA3_SPECIAL_TOKENS)})
    tokenizer.add_tokens(list(LLASA_SPECIAL_TOKENS), special_tokens=True)
    tokenizer.add_tokens([speech_token(i) for i in range(num_speech_tokens)], special_tokens=True)
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    return tokenizer


def make_tiny_llasa(path: str | Path, num_speech_tokens: int = 65_536, seed: int = 0) -> Path:
    """Save a tiny Llasa-format LlamaForCausalLM and its tokenizer under `path`."""
    path = Path(path)
    tokenizer = build_llasa_tokenizer(num_speech_tokens)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|SPEECH_GENERATION_END|>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_xcodec2(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny Xcodec2Model (real architecture: FSQ of 4**8 = 65,536 codes, hop 320)."""
    path = Path(path)
    torch.manual_seed(seed)
    semantic = Wav2Vec2BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        output_hidden_size=32,
        feature_projection_input_dim=160,
        conv_depthwise_kernel_size=3,
    )
    config = Xcodec2Config(
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        encoder_hidden_size=8,
        semantic_model_config=semantic.to_dict(),
        quantization_dim=64 + 32,  # acoustic + semantic hidden sizes, as in the real config
    )
    Xcodec2Model(config).save_pretrained(path)
    return path
