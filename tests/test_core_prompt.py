import pytest
from transformers import AutoTokenizer

from llasa_core.prompt import LlasaVocab, PromptFormatError, build_prompt_ids, speech_token
from llasa_core.tiny_checkpoints import build_llasa_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_llasa_path):
    return AutoTokenizer.from_pretrained(tiny_llasa_path)


@pytest.fixture(scope="module")
def vocab(tokenizer):
    return LlasaVocab.from_tokenizer(tokenizer)


def ids(tokenizer, *parts):
    """Token ids of a prompt spelled out piece by piece: special tokens by name, text by bytes."""
    out = []
    for part in parts:
        if part.startswith("<|") and part.endswith("|>"):
            out.append(tokenizer.convert_tokens_to_ids(part))
        else:
            out += tokenizer.encode(part, add_special_tokens=False)
    return out


def test_vocab_is_read_from_the_tokenizer(tokenizer, vocab):
    assert vocab.num_speech_tokens == 65_536
    assert vocab.first_speech_id == tokenizer.convert_tokens_to_ids("<|s_0|>")
    assert tokenizer.convert_tokens_to_ids("<|s_65535|>") == vocab.first_speech_id + 65_535
    # Llasa's order: the eight special tokens come right before the speech tokens.
    assert vocab.speech_start_id == vocab.first_speech_id - 4
    assert vocab.speech_end_id == vocab.first_speech_id - 3


def test_prompt_without_reference_is_the_llama3_chat_prompt(tokenizer, vocab):
    prompt = build_prompt_ids(tokenizer, vocab, "Hello world.")
    expected = ids(
        tokenizer,
        "<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>",
        "\n\nConvert the text to speech:", "<|TEXT_UNDERSTANDING_START|>", "Hello world.",
        "<|TEXT_UNDERSTANDING_END|>", "<|eot_id|>",
        "<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\n", "<|SPEECH_GENERATION_START|>",
    )
    assert prompt == expected


def test_prompt_with_reference_voice(tokenizer, vocab):
    reference_codes = [0, 17, 65_535]
    prompt = build_prompt_ids(tokenizer, vocab, "Target text.", "Reference words.", reference_codes)
    expected = ids(
        tokenizer,
        "<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>",
        "\n\nConvert the text to speech:", "<|TEXT_UNDERSTANDING_START|>", "Reference words. Target text.",
        "<|TEXT_UNDERSTANDING_END|>", "<|eot_id|>",
        "<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\n", "<|SPEECH_GENERATION_START|>",
        "<|s_0|>", "<|s_17|>", "<|s_65535|>",
    )
    assert prompt == expected


def test_prompt_equals_the_model_card_recipe(tokenizer, vocab):
    """The model card spells the reference codes out in the assistant turn and re-tokenises."""
    codes = [5, 6, 7, 60_000]
    chat = [
        {"role": "user", "content": "Convert the text to speech:<|TEXT_UNDERSTANDING_START|>"
                                    "Ref. Hi.<|TEXT_UNDERSTANDING_END|>"},
        {"role": "assistant", "content": "<|SPEECH_GENERATION_START|>" + "".join(map(speech_token, codes))},
    ]
    card = tokenizer.apply_chat_template(chat, tokenize=True, continue_final_message=True)["input_ids"]
    assert build_prompt_ids(tokenizer, vocab, "Hi.", "Ref.", codes) == list(card)


def test_smaller_codebook_is_found():
    vocab = LlasaVocab.from_tokenizer(build_llasa_tokenizer(num_speech_tokens=1024))
    assert vocab.num_speech_tokens == 1024


def test_not_a_llasa_tokenizer_is_refused():
    tokenizer = build_llasa_tokenizer(num_speech_tokens=4)

    class WithoutSpeechStart:
        def get_vocab(self):
            return {k: v for k, v in tokenizer.get_vocab().items() if k != "<|SPEECH_GENERATION_START|>"}

    with pytest.raises(PromptFormatError, match="SPEECH_GENERATION_START"):
        LlasaVocab.from_tokenizer(WithoutSpeechStart())


def test_out_of_range_codes_are_refused(vocab):
    with pytest.raises(PromptFormatError, match=r"\[0, 65536\)"):
        vocab.codes_to_ids([65_536])


def test_a_rebuilt_tokenizer_gives_every_token_the_same_id():
    """Two processes building the same tokenizer agree on every id (tokenizers' byte alphabet comes
    in a per-process hash order), so training resumed from saved weights reads the same tokens."""
    import subprocess
    import sys

    script = ("from llasa_core.tiny_checkpoints import build_llasa_tokenizer; "
              "v = build_llasa_tokenizer(8, whole_tokens=['ə', 'ɪ']).get_vocab(); "
              "print(sorted(v.items()))")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]  # two random byte orders agree by chance with negligible odds
    assert runs[0] == runs[1] and "('<|s_7|>'" in runs[0]


@pytest.mark.parametrize("checkpoint", ["tiny", "models/llasa-demo/lm"])
def test_the_orchestrators_prompts_are_the_lms(checkpoint, tiny_llasa_path):
    """The orchestrator loads the tokenizer without AutoTokenizer (which imports torch); the LM
    replica loads it with AutoTokenizer: both must give the same ids, the demo's phonemiser too."""
    from llasa_core.prompt import PromptBuilder

    path = str(tiny_llasa_path) if checkpoint == "tiny" else checkpoint
    orchestrator = PromptBuilder.from_pretrained(path)
    lm = PromptBuilder.from_pretrained(path, AutoTokenizer.from_pretrained(path))
    args = ("Dr. Smith paid $42 on 3 May, didn't she?", "Ein Beispiel: naïve café.", [0, 7, 3])
    assert type(orchestrator.tokenizer) is type(lm.tokenizer)
    assert orchestrator(*args) == lm(*args)
    assert orchestrator("Hello.") == lm("Hello.")
