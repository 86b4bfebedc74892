"""The committed demo model, loaded by the public path, must really speak.

Loads models/llasa-demo through `TransformersLM` and `load_codec` (the code that loads
HKUSTAudio/Llasa-1B and X-codec2): the Llasa format, the codec round trip heard by the embedded
ASR, speech from a best-of-4 search in which the ASR hears words, held-out sentences said well
enough that the ASR hears most of their words, and zero-shot cloning.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from llasa_core.codec import load_codec
from llasa_core.demo_codec import DemoFSQCodec
from llasa_core.engine import LlasaTTS
from llasa_core.lm import TransformersLM
from llasa_core.prompt import LLASA_SPECIAL_TOKENS, SPEECH_GENERATION_START, TTS_INSTRUCTION
from llasa_core.search import SearchConfig

MODEL = Path(__file__).resolve().parents[1] / "models" / "llasa-demo"
TEXT = "My friend works as a teacher in Boston."


def words_heard(transcript: str, text: str) -> float:
    from verifiers.asr import error_rate

    return 1.0 - error_rate(text, transcript, "en")[1]


@pytest.fixture(scope="module")
def demo():
    from verifiers.registry import build_verifier

    lm = TransformersLM(str(MODEL / "lm"))
    codec = load_codec(str(MODEL / "codec"))
    asr = build_verifier({"name": "asr", "kind": "asr"})
    return LlasaTTS(lm, codec, {"asr": asr}), asr


def test_checkpoint_is_in_llasa_format(demo):
    engine, _ = demo
    tokenizer, vocab = engine.lm.tokenizer, engine.lm.vocab
    assert isinstance(engine.codec, DemoFSQCodec)
    assert (engine.codec.sample_rate, engine.codec.samples_per_token) == (16_000, 320)
    assert vocab.num_speech_tokens == engine.codec.codebook_size
    ids = tokenizer.convert_tokens_to_ids(list(LLASA_SPECIAL_TOKENS))
    assert ids == list(range(ids[0], ids[0] + 8)) and ids[-1] + 1 == vocab.first_speech_id
    prompt = tokenizer.decode(engine.lm.prompt_ids(TEXT))
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + TTS_INSTRUCTION)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n" + SPEECH_GENERATION_START)
    assert "ˈ" in prompt  # the declared phoneme front end ran


def test_codec_round_trip_keeps_the_words(demo):
    from verifier_fixtures import synthesize

    engine, asr = demo
    speech = synthesize(TEXT)
    codes = engine.codec.encode(speech)
    assert len(codes) == len(speech) // 320 and max(codes) < engine.codec.codebook_size
    (decoded,) = engine.codec.decode([codes])
    (transcript,) = asr.transcriber.transcribe([decoded], "en")
    assert words_heard(transcript, TEXT) >= 0.7, transcript


@pytest.fixture(scope="module")
def searched(demo):
    """Best-of-4 by the embedded ASR verifier: (audio, transcript)."""
    engine, asr = demo
    config = SearchConfig(n=4, outcome_verifiers={"asr": 1.0}, seed=0, max_total_tokens=700)
    audio = asyncio.run(engine.synthesize(TEXT, config)).chosen.audio
    (transcript,) = asr.transcriber.transcribe([audio], "en")
    return audio, transcript


def test_demo_model_speaks(searched):
    """Speech of a plausible length in which the ASR hears English words (noise or a broken
    codec gives silence, "you" or nothing)."""
    audio, transcript = searched
    assert 1.0 < len(audio) / 16_000 < 8.0
    assert len(transcript.split()) >= 3, transcript


def test_demo_model_says_held_out_sentences(demo):
    """Best-of-4 by the ASR verifier on five held-out template sentences: the transcript shares
    most of its words with the text. Ordinary prose with unseen words is bench_demo's job."""
    from demo.sentences import HELD_OUT_EXAMPLES, is_held_out

    engine, asr = demo
    held_out = HELD_OUT_EXAMPLES[:5]
    assert all(is_held_out(text) for text in held_out)
    heard = []
    for text in held_out:
        config = SearchConfig(n=4, outcome_verifiers={"asr": 1.0}, seed=0, max_total_tokens=700)
        audio = asyncio.run(engine.synthesize(text, config)).chosen.audio
        (transcript,) = asr.transcriber.transcribe([audio], "en")
        heard.append(words_heard(transcript, text))
    assert np.mean(heard) >= 0.5, heard


def test_zero_shot_cloning_continues_the_reference(demo):
    """The output sounds like the reference voice, more than like another voice saying the same."""
    from verifier_fixtures import other_voice, synthesize

    from verifiers.registry import build_verifier
    from llasa_core.stages import ScoreContext

    engine, _ = demo
    reference_text = "The weather today is sunny with a light breeze from the west."
    reference = synthesize(reference_text)
    config = SearchConfig(n=1, seed=0, max_total_tokens=1200)
    result = asyncio.run(engine.synthesize(TEXT, config, reference_audio=reference, reference_text=reference_text))
    output = result.chosen.audio
    assert 1.0 < len(output) / 16_000 < 8.0  # the reference's own audio is cut from the output
    speaker = build_verifier({"name": "speaker", "kind": "speaker"})
    same, other = speaker.score([output, output], [ScoreContext(TEXT, reference_audio=reference),
                                                   ScoreContext(TEXT, reference_audio=other_voice(reference))])
    assert same.raw > other.raw + 0.1, (same.raw, other.raw)


def test_the_default_voice_is_the_codecs_own_and_every_seed_speaks_in_it(demo):
    """voice.npz (serve_config.yaml's lm.default_voice) holds codes of this codec for its audio
    and says its transcript; prompted with it, outputs of different seeds sound like it, more than
    like another voice saying the same."""
    from verifier_fixtures import other_voice

    from deployments.voices import read_voice_file
    from llasa_core.stages import ScoreContext
    from verifiers.registry import build_verifier

    engine, asr = demo
    voice = read_voice_file(str(MODEL / "voice.npz"))
    assert voice.codes == engine.codec.encode(voice.audio)
    (transcript,) = asr.transcriber.transcribe([voice.audio], "en")
    assert words_heard(transcript, voice.transcript) >= 0.8, transcript
    outputs = [asyncio.run(engine.synthesize(TEXT, SearchConfig(n=1, seed=seed, max_total_tokens=1000),
                                             reference_audio=voice.audio, reference_text=voice.transcript)).chosen.audio
               for seed in (1, 2)]
    speaker = build_verifier({"name": "speaker", "kind": "speaker"})
    stranger = other_voice(voice.audio)
    scores = speaker.score(outputs * 2, [ScoreContext(TEXT, reference_audio=r) for r in (voice.audio,) * 2 + (stranger,) * 2])
    same, other = [s.raw for s in scores[:2]], [s.raw for s in scores[2:]]
    assert min(same) > max(other) + 0.05, (same, other)


def test_int8_weights_keep_the_demo_models_predictions(demo):
    """`quantize="int8"` (the CPU speed option) replaces the decoder's linear layers and predicts
    nearly what float32 predicts at every speech position of real speech, with both of its
    kernels: many rows at once (fbgemm, as in a prefill or a batched step: mean KL 0.019 nats
    measured, the same most likely code at 0.79 of positions) and one row at a time (weight-only,
    as in an N = 1 decode step: 0.002 and 0.96; compiled as `compile_one_row` serves it, with
    inductor's autotuned kernels over frozen weights, the same), and its int8 speech head predicts
    nearly what the float32 head does from the same hidden states. The KL is the measure; the most
    likely code agrees less where the model is unsure (its top code has 0.085 of the mass on
    average)."""
    import torch
    from transformers import DynamicCache

    from llasa_core.lm import Int8Linear
    from llasa_core.lm_scheduler import compile_for_one_row, frozen_weights
    from verifier_fixtures import synthesize

    engine, _ = demo
    quantized = TransformersLM(str(MODEL / "lm"), quantize="int8")
    try:
        assert isinstance(quantized.model.model.layers[0].mlp.up_proj, Int8Linear)
        codes = engine.codec.encode(synthesize(TEXT))
        ids = torch.tensor([engine.lm.prompt_ids(TEXT) + [engine.lm.vocab.first_speech_id + c for c in codes]])
        first = ids.shape[1] - len(codes)
        with torch.inference_mode():
            exact = engine.lm.model(ids).logits[0, first:].log_softmax(-1)
            many_rows = quantized.model(ids).logits[0, first:].log_softmax(-1)
            cache = DynamicCache()
            quantized.model(ids[:, :first], past_key_values=cache)
            one_row = torch.cat([quantized.model(ids[:, p:p + 1], past_key_values=cache).logits[0]
                                 for p in range(first, ids.shape[1])]).log_softmax(-1)
        with torch.inference_mode(), frozen_weights():
            step = compile_for_one_row(lambda token, cache: quantized.model(token, past_key_values=cache).logits[0],
                                       torch.device("cpu"))
            cache = DynamicCache()
            quantized.model(ids[:, :first], past_key_values=cache)
            compiled = torch.cat([step(ids[:, p:p + 1], cache) for p in range(first, ids.shape[1])]).log_softmax(-1)
        for approx, most_kl, least_agreement in ((many_rows, 0.1, 0.7), (one_row, 0.02, 0.9), (compiled, 0.02, 0.9)):
            kl = (exact.exp() * (exact - approx)).sum(-1)
            assert kl.mean() < most_kl, kl.mean()
            assert (exact.argmax(-1) == approx.argmax(-1)).float().mean() > least_agreement
        # The int8 copy of the head's speech and end rows that decode steps read (measured: mean
        # KL 0.0002 nats over the same hidden states, both kernels).
        vocab = quantized.vocab
        with torch.inference_mode():
            hidden = quantized.model.model(ids).last_hidden_state[0, first:]
            head = quantized.model.get_output_embeddings().weight
            rows = torch.cat([head[vocab.first_speech_id:vocab.first_speech_id + vocab.num_speech_tokens],
                              head[vocab.speech_end_id:vocab.speech_end_id + 1]])
            exact = (hidden @ rows.T).log_softmax(-1)
            many_rows = quantized.scheduler.speech_head(hidden).log_softmax(-1)
            one_row = torch.cat([quantized.scheduler.speech_head(h[None]) for h in hidden]).log_softmax(-1)
        for approx in (many_rows, one_row):
            assert (exact.exp() * (exact - approx)).sum(-1).mean() < 0.005
        # ...and it samples speech through the scheduler (prefill and decode steps) like float32.
        config = SearchConfig(n=1, seed=0, max_total_tokens=700)
        audio = asyncio.run(LlasaTTS(quantized, engine.codec, {}).synthesize(TEXT, config)).chosen.audio
        assert len(audio) / 16_000 > 0.5
    finally:
        quantized.close()
