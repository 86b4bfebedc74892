"""Input that would only waste compute is refused by the request parser, before any stage runs,
with a message that says what to send instead; real speech passes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from deployments.config import LlasaAppArgs
from deployments.convert import parse_request
from deployments.orchestrator import RequestError
from llasa_core.audio import SAMPLE_RATE, read_audio, write_wav
from protos.llasa.tts.v1 import tts_pb2 as pb
from verifier_fixtures import SENTENCES, synthesize

ARGS = LlasaAppArgs()


def request(text: str = "Hello there.", audio: bytes | None = None, transcript: str = SENTENCES[0]):
    message = pb.SynthesizeRequest(text=text)
    if audio is not None:
        message.reference.CopyFrom(pb.ReferenceVoice(audio=audio, transcript=transcript))
    return message


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    return synthesize(SENTENCES[0], tmp_path_factory.mktemp("speech"))


@pytest.mark.parametrize("text", ["...", " - -- — ", "\u200b", "?!", "\u200b\u200d\ufeff", "***", "( )"])
def test_text_with_nothing_to_speak_is_refused(text):
    with pytest.raises(RequestError, match="nothing to speak"):
        parse_request(request(text), ARGS)


@pytest.mark.parametrize("text", ["Hello.", "42", "二零二五年", "Ça va?", "x"])
def test_text_with_words_or_digits_is_accepted(text):
    assert parse_request(request(text), ARGS).text == text


def test_a_transcript_with_nothing_to_speak_is_refused(speech):
    with pytest.raises(RequestError, match="reference.transcript has nothing to speak"):
        parse_request(request(audio=write_wav(speech), transcript="..."), ARGS)


def test_real_speech_is_accepted_as_a_reference(speech):
    job = parse_request(request(audio=write_wav(speech)), ARGS)
    assert job.reference_audio is not None and len(job.reference_audio) == len(speech)


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


@pytest.mark.parametrize("make_reference, message", [
    (lambda speech: np.zeros(3 * SAMPLE_RATE, np.float32), "silent"),
    (lambda speech: speech * 10 ** (-60 / 20), "silent"),  # real speech, 60 dB down
    (lambda speech: speech[: int(0.3 * SAMPLE_RATE)], "0.30 s long"),
    (lambda speech: noise(3.0, -60), "silent"),
    (lambda speech: noise(3.0, -20), "noise"),  # loud white noise: webrtcvad alone calls it speech
    (lambda speech: 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32),
     "of speech"),
])
def test_unusable_references_are_refused(speech, make_reference, message):
    with pytest.raises(RequestError, match=message):
        parse_request(request(audio=write_wav(make_reference(speech))), ARGS)


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")])
def test_a_file_cut_short_is_refused(speech, fmt, subtype):
    buffer = io.BytesIO()
    sf.write(buffer, speech, SAMPLE_RATE, format=fmt, subtype=subtype)
    whole = buffer.getvalue()
    assert len(parse_request(request(audio=whole), ARGS).reference_audio) == len(speech)
    with pytest.raises(RequestError, match="truncated|could not read"):
        parse_request(request(audio=whole[: len(whole) // 2]), ARGS)


def test_a_streamed_wav_with_an_unknown_data_size_is_read(speech):
    """Streaming writers leave the data size 0xFFFFFFFF; that is not truncation."""
    whole = bytearray(write_wav(speech))
    data_at = whole.index(b"data")
    whole[data_at + 4:data_at + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    assert len(read_audio(bytes(whole))) == len(speech)


def test_stereo_whose_channels_cancel_is_cloned_from_the_louder_channel(speech):
    """The mean of (x, -x) is silence; the reader takes the louder channel instead of refusing."""
    stereo = np.stack([speech, -0.8 * speech], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, stereo, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    job = parse_request(request(audio=buffer.getvalue()), ARGS)
    np.testing.assert_allclose(job.reference_audio, speech, atol=1e-6)


def test_ordinary_stereo_is_mixed_down(speech):
    stereo = np.stack([speech, 0.5 * speech], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, stereo, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    np.testing.assert_allclose(read_audio(buffer.getvalue()), 0.75 * speech, atol=1e-6)


def test_progress_carries_each_step_candidate_to_grpc():
    from deployments.convert import progress_proto
    from llasa_core.search import StepCandidate, StepEvent

    event = StepEvent(step=2, live=2, finished=0, best_score=0.7, lm_generated_tokens=80, candidates=(
        StepCandidate(id=4, parent=1, group=0, score=0.7, kept=True, finished=False),
        StepCandidate(id=5, parent=None, group=1, score=None, kept=False, finished=False)))
    kept, pruned = progress_proto(event, 1.5).candidates
    assert (kept.id, kept.parent, kept.score, kept.kept) == (4, 1, 0.7, True)
    assert not pruned.HasField("parent") and not pruned.HasField("score") and not pruned.kept and pruned.group == 1
