"""Forced alignment for the demo LM's attention prior (demo.align) finds known segmentations."""

from __future__ import annotations

import numpy as np

from demo.align import align, viterbi
from demo.train_lm import IPA_SYMBOLS, demo_tokenizer


def test_viterbi_follows_the_cheapest_monotonic_path_and_skips_what_may_be_skipped():
    # Units a, space, b: frames 0-2 look like a, 3-5 like b; the space costs the same everywhere.
    cost = np.array([[0, 1, 5]] * 3 + [[5, 1, 0]] * 3, np.float32)
    assert viterbi(cost, np.array([False, True, False])).tolist() == [0, 0, 0, 2, 2, 2]
    # A unit that may not be skipped takes at least one frame, even where it fits badly.
    assert viterbi(cost, np.array([False, False, False])).tolist() in ([0, 0, 1, 2, 2, 2], [0, 0, 0, 1, 2, 2])


def test_flat_start_recovers_the_segmentation_of_synthetic_utterances():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (4, 8))
    mels, symbols, skippable, truths = [], [], [], []
    for _ in range(40):
        units = np.cumsum(rng.integers(1, 4, 6)) % 4  # neighbours differ: each boundary is visible
        durations = rng.integers(2, 9, 6)
        truth = np.repeat(np.arange(6), durations)
        mels.append(centres[units[truth]] + rng.normal(0, 1, (len(truth), 8)))
        symbols.append(units)
        skippable.append(np.zeros(6, bool))
        truths.append(truth)
    paths = align(mels, symbols, skippable, 4, iterations=6, log=lambda _: None)
    accuracy = np.mean(np.concatenate([p == t for p, t in zip(paths, truths)]))
    assert accuracy > 0.95


def test_demo_tokenizer_keeps_each_ipa_symbol_one_token():
    tokenizer = demo_tokenizer(num_speech_tokens=16)
    phonemes = "ʃiː pˈɔːɹd ɐ ɡlˈæs ʌv wˈɔːɾɚ ænd sˈæt baɪ ðə fˈaɪɚ."
    ids = tokenizer(phonemes, add_special_tokens=False).input_ids
    assert len(ids) == len(phonemes)
    assert len({tokenizer(s, add_special_tokens=False).input_ids[0] for s in IPA_SYMBOLS}) == len(IPA_SYMBOLS)
    speech = tokenizer.convert_tokens_to_ids([f"<|s_{i}|>" for i in range(16)])
    assert speech == list(range(speech[0], speech[0] + 16))
