"""The Llasa prompt format, as the public checkpoints (HKUSTAudio/Llasa-1B/3B/8B) expect it.

A Llasa tokenizer is the Llama-3 tokenizer plus eight special tokens and one token per codec
code, `<|s_0|>` .. `<|s_{K-1}|>`. Every id is looked up in the tokenizer, never hard-coded, so the
same code serves Llasa-1B (K = 65,536) and a small demo checkpoint with fewer codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

LLASA_SPECIAL_TOKENS = tuple(
    f"<|{name}|>"
    for name in (
        "TEXT_GENERATION_START",
        "TEXT_GENERATION_END",
        "TEXT_UNDERSTANDING_START",
        "TEXT_UNDERSTANDING_END",
        "SPEECH_GENERATION_START",
        "SPEECH_GENERATION_END",
        "SPEECH_UNDERSTANDING_START",
        "SPEECH_UNDERSTANDING_END",
    )
)
TEXT_UNDERSTANDING_START = "<|TEXT_UNDERSTANDING_START|>"
TEXT_UNDERSTANDING_END = "<|TEXT_UNDERSTANDING_END|>"
SPEECH_GENERATION_START = "<|SPEECH_GENERATION_START|>"
SPEECH_GENERATION_END = "<|SPEECH_GENERATION_END|>"
TTS_INSTRUCTION = "Convert the text to speech:"


def speech_token(code: int) -> str:
    return f"<|s_{code}|>"


class PromptFormatError(ValueError):
    """The tokenizer is not a Llasa tokenizer (a token is missing or out of place)."""


@dataclass(frozen=True)
class LlasaVocab:
    """Where the Llasa tokens sit in a tokenizer's vocabulary."""

    speech_start_id: int
    speech_end_id: int
    first_speech_id: int
    num_speech_tokens: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "LlasaVocab":
        vocab = tokenizer.get_vocab()
        missing = [t for t in (*LLASA_SPECIAL_TOKENS, speech_token(0)) if t not in vocab]
        if missing:
            raise PromptFormatError(f"not a Llasa tokenizer: missing {missing}")
        first = vocab[speech_token(0)]
        count = 0
        while vocab.get(speech_token(count)) == first + count:
            count += 1
        if speech_token(count) in vocab:
            raise PromptFormatError(
                f"speech tokens must have consecutive ids: {speech_token(count)} is out of place"
            )
        return cls(
            speech_start_id=vocab[SPEECH_GENERATION_START],
            speech_end_id=vocab[SPEECH_GENERATION_END],
            first_speech_id=first,
            num_speech_tokens=count,
        )

    def codes_to_ids(self, codes: Sequence[int]) -> list[int]:
        bad = [c for c in codes if not 0 <= c < self.num_speech_tokens]
        if bad:
            raise PromptFormatError(
                f"speech codes must be in [0, {self.num_speech_tokens}), got e.g. {bad[:3]}"
            )
        return [self.first_speech_id + c for c in codes]

    def ids_to_codes(self, ids: Sequence[int]) -> list[int]:
        return [i - self.first_speech_id for i in ids]

    def allowed_output_ids(self) -> range:
        """Speech tokens; the end token is added by the sampler's mask."""
        return range(self.first_speech_id, self.first_speech_id + self.num_speech_tokens)


def prompt_text(text: str, reference_text: str | None = None) -> str:
    """The text the LM reads: with a reference voice, its transcript comes first."""
    if reference_text:
        text = f"{reference_text.strip()} {text.strip()}"
    return f"{TTS_INSTRUCTION}{TEXT_UNDERSTANDING_START}{text}{TEXT_UNDERSTANDING_END}"


def build_prompt_ids(
    tokenizer, vocab: LlasaVocab, text: str, reference_text: str | None = None,
    reference_codes: Sequence[int] = (),
) -> list[int]:
    """Token ids of a Llasa TTS prompt, ending where the LM starts writing speech tokens.

    Same ids as the model card's `apply_chat_template(chat, continue_final_message=True)` with
    the reference's `<|s_N|>` string in the assistant turn; the speech ids are appended directly
    instead of spelling out and re-tokenising hundreds of token strings.
    """
    chat = [
        {"role": "user", "content": prompt_text(text, reference_text)},
        {"role": "assistant", "content": SPEECH_GENERATION_START},
    ]
    ids = tokenizer.apply_chat_template(chat, tokenize=True, continue_final_message=True)
    if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    if ids[-1] != vocab.speech_start_id:
        raise PromptFormatError("the chat template must end the prompt with SPEECH_GENERATION_START")
    return list(ids) + vocab.codes_to_ids(reference_codes)


FRONTEND_FILE = "llasa_frontend.json"


class PromptBuilder:
    """Text -> prompt ids for one checkpoint: its tokenizer, its Llasa vocab, its text front end.

    Public Llasa checkpoints read raw text. A checkpoint may declare a text front end (e.g. a
    phonemiser) in `llasa_frontend.json` beside its tokenizer; it is applied to the target text
    and the reference transcript before the template, and nothing else changes.
    """

    def __init__(self, tokenizer, frontend=None):
        self.tokenizer = tokenizer
        self.vocab = LlasaVocab.from_tokenizer(tokenizer)
        self.frontend = frontend

    @classmethod
    def from_pretrained(cls, model: str, tokenizer=None) -> "PromptBuilder":
        """Without a tokenizer, load the checkpoint's tokenizer.json (every Llasa checkpoint ships
        one) as a fast tokenizer: the class AutoTokenizer picks for it, without AutoTokenizer's
        import of torch, so the orchestrator builds prompts without a model library in memory."""
        from transformers import PreTrainedTokenizerFast

        from .frontend import load_frontend

        return cls(tokenizer or PreTrainedTokenizerFast.from_pretrained(model), load_frontend(model))

    def __call__(self, text: str, reference_text: str | None = None, reference_codes: Sequence[int] = ()) -> list[int]:
        if self.frontend is not None:
            text = self.frontend(text)
            reference_text = self.frontend(reference_text) if reference_text else reference_text
        return build_prompt_ids(self.tokenizer, self.vocab, text, reference_text, reference_codes)
