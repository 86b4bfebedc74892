"""Demo data v2 (demo.data, demo.voices, demo.sentences) and the training examples built from it
(demo.train_lm): items of 1-30 words of every kind, voices that move pitch and formants, code
shards that a rerun rebuilds bit for bit and skips once written, and cloning prompts in Llasa's
exact format."""

from __future__ import annotations

import numpy as np
import pytest


def test_mixed_items_cover_every_kind_within_thirty_words_and_repeat_for_a_seed():
    from demo.sentences import MixedSentenceMaker

    items = [MixedSentenceMaker(seed=3).item() for _ in range(1)] + [MixedSentenceMaker(seed=3).item()]
    assert items[0] == items[1]
    maker = MixedSentenceMaker(seed=4)
    drawn = [maker.item() for _ in range(400)]
    assert {kind for kind, _ in drawn} == {"word", "phrase", "question", "prose", "common"}
    assert all(1 <= len(text.split()) <= 30 for _, text in drawn)
    assert all(len(text.split()) == 1 for kind, text in drawn if kind == "word")
    assert all(text.endswith("?") for kind, text in drawn if kind == "question")


def harmonic(f0: float, seconds: float = 1.0, sample_rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 30)).astype(np.float32) * 0.1


def median_f0(audio: np.ndarray) -> float:
    import pyworld

    f0, _ = pyworld.dio(audio.astype(np.float64), 16_000)
    return float(np.median(f0[f0 > 0]))


def spectral_centroid(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float((spectrum * np.arange(len(spectrum))).sum() / spectrum.sum())


def test_voice_transform_scales_pitch_and_moves_formants_independently():
    from demo.voices import Voice, transform

    audio = harmonic(120.0)
    assert median_f0(transform(audio, Voice("x", pitch=1.5))) == pytest.approx(180.0, rel=0.05)
    assert median_f0(transform(audio, Voice("x", formant=1.3))) == pytest.approx(120.0, rel=0.05)
    brighter = spectral_centroid(transform(audio, Voice("x", formant=1.3)))
    assert brighter > 1.15 * spectral_centroid(transform(audio, Voice("x")))


def test_voices_are_named_uniquely_and_the_held_out_voice_is_not_trained():
    from demo.voices import HELD_OUT_VOICE, VOICES

    assert len({v.name for v in VOICES}) == len(VOICES) >= 4
    assert HELD_OUT_VOICE.name not in {v.name for v in VOICES}


def test_fsq_codes_name_grid_points_and_a_padded_batch_decodes_as_each_alone():
    import torch

    from llasa_core.demo_codec import MelFSQ

    net = MelFSQ(levels=(4, 3, 2), channels=16).eval()
    every = torch.arange(24)
    assert torch.equal(net.codes(net.points(every)), every)  # 4 x 3 x 2 codes, each one grid point
    mels = torch.randn(2, 30, 80) * 3 - 5
    with torch.no_grad():
        points = net.quantise(mels)
        assert torch.equal(points, points.round()) and points.min() >= 0 and (points <= net.levels - 1).all()
        mask = torch.tensor([[1] * 20 + [0] * 10, [1] * 30])
        together = net.decode(net.quantise(mels, mask), mask)[0, :20]
        alone = net.decode(net.quantise(mels[:1, :20]))[0]
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Three shards of three items, a 16-code codec trained on the first two."""
    import demo.data as data

    root = tmp_path_factory.mktemp("demo-data")
    argv = ["--shards", "3", "--out", str(root / "out"), "--cache", str(root / "cache"), "--levels", "4,4",
            "--codec-steps", "10"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "SHARD_SIZE", 3)
        patch.setattr(data, "CODEC_SHARDS", 2)
        patch.setattr("sys.argv", ["demo.data", *argv])
        data.main()
        yield root, data


def test_code_shards_are_uint16_codes_of_the_data_codec_and_rebuild_identically(small_run):
    root, data = small_run
    from llasa_core.demo_codec import DemoFSQCodec

    codec = DemoFSQCodec(str(root / "out" / "codec"))
    shards = sorted((root / "out" / "codes").glob("shard*.npz"))
    assert [p.name for p in shards] == ["shard00000.npz", "shard00001.npz", "shard00002.npz"]
    assert not list((root / "out" / "codes").glob("*.tmp*"))
    last = np.load(shards[-1])
    assert last["codes"].dtype == np.uint16 and last["codes"].max() < 16
    assert str(last["codec"]) == data.codec_id(codec)
    assert len(last["texts"]) == len(last["voices"]) == len(last["lengths"]) == 3
    assert last["lengths"].sum() == len(last["codes"])
    # Shard 2 was synthesised without kept audio: without its codes and cached frames, a rerun
    # makes it again, bit for bit; the others are skipped (their files are not rewritten).
    before = {p.name: p.stat().st_mtime_ns for p in shards}
    saved = dict(np.load(shards[-1]))
    shards[-1].unlink()
    (root / "cache" / "v2" / "mels" / shards[-1].name).unlink()
    data.main()
    again = np.load(shards[-1])
    assert np.array_equal(again["codes"], saved["codes"]) and list(again["texts"]) == list(saved["texts"])
    assert all(shards[i].stat().st_mtime_ns == before[shards[i].name] for i in range(2))
    # A shard of another codec is coded again (from its cached log-mel frames), with this one's codes.
    assert len(list((root / "cache" / "v2" / "mels").glob("shard?????.npz"))) == 3
    codes = np.load(shards[1])["codes"]
    np.savez(shards[1], **{**dict(np.load(shards[1])), "codec": np.array("another"), "codes": codes * 0})
    data.main()
    assert str(np.load(shards[1])["codec"]) == data.codec_id(codec)
    assert np.array_equal(np.load(shards[1])["codes"], codes)


def test_training_examples_are_llasa_prompts_with_a_reference_of_the_same_voice(small_run):
    root, _ = small_run
    from demo.align import ShardAligner
    from demo.train_lm import IGNORE, Corpus, Utterance, demo_tokenizer
    from llasa_core.demo_codec import DemoFSQCodec
    from llasa_core.prompt import build_prompt_ids

    codec = DemoFSQCodec(str(root / "out" / "codec"))
    tokenizer = demo_tokenizer(codec.codebook_size)
    corpus = Corpus(root / "out", root / "cache", tokenizer, codec)
    corpus.refresh(log=lambda _: None)
    assert len(corpus.train) + len(corpus.held_out) == 9
    assert isinstance(corpus.aligner, ShardAligner)
    for u in corpus.train + corpus.held_out:
        assert len(u.said) == len(u.codes) and 0 <= u.said.min() and u.said.max() < len(u.text)

    phonemes = lambda text: tokenizer.decode(text)
    target = Utterance(tokenizer("hɛloʊ", add_special_tokens=False).input_ids, corpus.vocab.codes_to_ids([1, 2, 3]),
                       np.array([0, 2, 4]), "joe")
    reference = Utterance(tokenizer("wˈɔːɾɚ", add_special_tokens=False).input_ids, corpus.vocab.codes_to_ids([5, 6]),
                          np.array([0, 1]), "joe")
    ids, labels, (speech_start, text_start, text_end, pointer) = corpus.example(target, reference)
    expected_prompt = build_prompt_ids(tokenizer, corpus.vocab, phonemes(target.text), phonemes(reference.text), [5, 6])
    assert ids == expected_prompt + target.codes + [corpus.vocab.speech_end_id]
    assert labels == [IGNORE] * len(expected_prompt) + target.codes + [corpus.vocab.speech_end_id]
    assert speech_start == len(expected_prompt) - 1
    # The pointer names the target's own phonemes (after the reference transcript and a space).
    assert [ids[p] for p in pointer] == [target.text[i] for i in (0, 2, 4, 4)]
    plain_ids, _, _ = corpus.example(target, None)
    assert plain_ids[: len(plain_ids) - 4] == build_prompt_ids(tokenizer, corpus.vocab, phonemes(target.text))


def test_training_resumes_from_its_state_and_saves_a_checkpoint_the_service_loads(small_run, tmp_path, capsys):
    root, _ = small_run
    import torch

    import demo.train_lm as train_lm
    from llasa_core.codec import load_codec
    from llasa_core.lm import TransformersLM

    argv = ["demo.train_lm", "--data", str(root / "out"), "--cache", str(root / "cache"), "--out", str(tmp_path),
            "--layers", "2", "--hidden", "64", "--alignment-layers", "1", "--phoneme-layer", "1", "--warmup", "1",
            "--tokens-per-batch", "600", "--checkpoint-every", "0", "--eval-every", "0"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", [*argv, "--max-steps", "2"])
        train_lm.main()
        patch.setattr("sys.argv", [*argv, "--max-steps", "3"])
        train_lm.main()
    assert "resumed at step 2" in capsys.readouterr().out
    # --init-from starts a new run (own schedule) from those weights: one step at a negligible lr
    # leaves them where they were, where a fresh initialisation would not be.
    continued = tmp_path / "continued"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", [*argv, "--out", str(continued), "--init-from", str(tmp_path / "state.pt"),
                                   "--lr", "1e-12", "--max-steps", "1"])
        train_lm.main()
    assert "initialised from" in capsys.readouterr().out
    source, new = (torch.load(path / "state.pt", weights_only=False) for path in (tmp_path, continued))
    assert new["step"] == 1
    assert all(torch.allclose(new["model"][name], weights, atol=1e-6) for name, weights in source["model"].items())
    # ... or from a saved model folder (best/, models/llasa-demo/lm): its safetensors hold the tied
    # embedding once, and its training.json names the codec
    from safetensors.torch import load_file

    from_folder = tmp_path / "from-folder"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", [*argv, "--out", str(from_folder), "--init-from", str(tmp_path / "best"),
                                   "--lr", "1e-12", "--max-steps", "1"])
        train_lm.main()
    saved = load_file(tmp_path / "best" / "model.safetensors")
    new = torch.load(from_folder / "state.pt", weights_only=False)["model"]
    assert all(torch.allclose(new[name], weights, atol=1e-6) for name, weights in saved.items())
    info = (tmp_path / "best" / "training.json").read_text()
    assert '"codec"' in info
    lm = TransformersLM(str(tmp_path / "best"))
    codec = load_codec(str(root / "out" / "codec"))
    assert lm.vocab.num_speech_tokens == codec.codebook_size == 16
    ids = lm.prompt_ids("Hello.", "Thank you!", [1, 2, 3])
    assert ids[-3:] == lm.vocab.codes_to_ids([1, 2, 3])


def test_pointer_attention_trains_as_eager_attention_would():
    """The guided heads' probabilities, the outputs and the gradients match eager attention's,
    which computes and returns every head of every layer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from demo.train_lm import use_pointer_attention

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))
    ids = torch.randint(0, 300, (3, 40))
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 30:] = 0  # a padded row

    def run(guided_heads):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, attention_mask=mask, labels=ids, output_attentions=True)
        heads = guided_heads(out.attentions)
        (out.loss + sum(h.pow(2).sum() for h in heads)).backward()
        return out.logits.float(), heads, model.model.layers[1].self_attn.q_proj.weight.grad.clone()

    model.set_attn_implementation("eager")
    logits, heads, grad = run(lambda attentions: [attentions[layer][:, 0].float() for layer in (1, 2)])
    use_pointer_attention(model, [1, 2])
    pointer_logits, pointer_heads, pointer_grad = run(lambda attentions: [a[:, 0] for a in attentions])
    assert len(pointer_heads) == 2 and pointer_heads[0].shape == heads[0].shape
    for ours, eager in zip(pointer_heads, heads):
        assert torch.allclose(ours, eager, atol=2e-3)
        assert torch.allclose(ours[1, :30].sum(-1), torch.ones(30)) and ours[1, :30, 30:].max() == 0  # padding unseen
        assert ours[0].triu(1).max() == 0  # causal
    assert torch.allclose(pointer_logits, logits, atol=0.05)
    assert (pointer_grad - grad).norm() < 0.05 * grad.norm()


def test_the_codec_learns_the_spectra_of_its_speech_and_codes_as_the_shards_say(small_run):
    root, data = small_run
    import torch

    from demo.train_codec import held_out_loss, speech, train_codec
    from llasa_core.demo_codec import DemoFSQCodec, MelFSQ, mel_filterbank

    audio = [root / "cache" / "v2" / "audio" / f"shard{i:05d}.npz" for i in range(2)]
    codec = DemoFSQCodec(str(root / "out" / "codec"))
    first = data.load_audio_shard(audio[0])["audio"][0]
    assert np.array_equal(codec.encode(first), np.load(root / "out" / "codes" / "shard00000.npz")["codes"][:len(codec.encode(first))])
    wave = codec.decode([codec.encode(first)])[0]
    assert len(wave) == len(first) // 320 * 320 and np.isfinite(wave).all()

    trained = root / "trained"
    train_codec(audio, trained, levels=(4, 4), steps=120, channels=32, log=lambda _: None)
    filters = torch.from_numpy(mel_filterbank())
    held_out = speech(audio[1:], mel_filters := filters.numpy())
    untrained = MelFSQ((4, 4), channels=32)
    frames = torch.cat([m for m, _ in speech(audio[:1], mel_filters)])
    untrained.mel_mean.copy_(frames.mean(0))
    untrained.mel_std.copy_(frames.std(0) + 1e-3)
    learnt = DemoFSQCodec(str(trained)).net
    assert held_out_loss(learnt, filters, held_out) < 0.8 * held_out_loss(untrained, filters, held_out)
