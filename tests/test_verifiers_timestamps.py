"""Word timestamps against piper speech whose word timing is known (piper's phoneme durations)."""

from __future__ import annotations

import numpy as np
import pytest
from verifier_fixtures import spoken_word_times

from verifiers.asr import FasterWhisperTranscriber
from verifiers.timestamps import word_timestamps

# Sentences whose phonetic words are their written words one to one (espeak joins none).
TEXTS = (
    "Seven yellow apples fell quickly.",
    "The quick brown fox jumps over the lazy dog.",
    "We need to finish the report before the meeting on Friday.",
    "My brother bought a new car last summer.",
)


@pytest.fixture(scope="module")
def transcriber():
    return FasterWhisperTranscriber(cpu_threads=1)


def test_word_times_follow_the_speech(transcriber):
    spoken = [spoken_word_times(t) for t in TEXTS]
    results = word_timestamps(transcriber, [audio for audio, _ in spoken], TEXTS)
    errors = []
    for text, (audio, truth), words in zip(TEXTS, spoken, results):
        assert [w.word for w in words] == text.split()  # the request's own words, punctuation kept
        assert len(truth) == len(words), text
        for (start, end), word in zip(truth, words):
            assert 0 <= word.start <= word.end <= len(audio) / 16_000 + 1e-6
            middle = (word.start + word.end) / 2
            assert start - 0.25 <= middle <= end + 0.25, (word, start, end)
            errors += [abs(word.start - start), abs(word.end - end)]
        starts = [w.start for w in words]
        assert starts == sorted(starts)
    # Measured: mean 0.07 s, 90th percentile 0.14 s over these words.
    assert np.mean(errors) < 0.12


def test_words_are_the_request_text_even_when_the_audio_says_otherwise(transcriber):
    audio, _ = spoken_word_times(TEXTS[0])
    [words] = word_timestamps(transcriber, [audio], ["Purple elephants dance."])
    assert [w.word for w in words] == ["Purple", "elephants", "dance."]
    [right] = word_timestamps(transcriber, [audio], [TEXTS[0]])
    assert np.mean([w.probability for w in words]) < np.mean([w.probability for w in right])


def test_bad_requests_fail_clearly(transcriber):
    with pytest.raises(ValueError, match="one text per clip"):
        word_timestamps(transcriber, [np.zeros(16_000, np.float32)], [])
    with pytest.raises(ValueError, match="at most 30 s"):
        word_timestamps(transcriber, [np.zeros(16_000 * 31, np.float32)], ["x"])
    assert word_timestamps(transcriber, [np.zeros(16_000, np.float32)], [""]) == [[]]


def test_asr_verifiers_and_ensembles_give_word_times_and_nothing_for_noise():
    from verifier_fixtures import contexts, non_speech

    from verifiers import build_verifier
    from verifiers.asr import asr_word_timestamps

    audio, _ = spoken_word_times(TEXTS[0])
    ensemble = build_verifier({"name": "asr", "kind": "asr", "backend": "ensemble", "members": [
        {"backend": "pocketsphinx"}, {"backend": "faster-whisper", "options": {"cpu_threads": 1}}]})
    noise = non_speech(audio)["white_noise"]
    words, none = asr_word_timestamps(ensemble, [audio, noise], contexts([TEXTS[0]] * 2))
    assert [w["word"] for w in words] == TEXTS[0].split() and none == []
    assert set(words[0]) == {"word", "start", "end", "probability"}
    with pytest.raises(ValueError, match="faster-whisper"):
        asr_word_timestamps(build_verifier({"name": "s", "kind": "asr", "backend": "pocketsphinx"}), [audio], contexts(["x"]))
