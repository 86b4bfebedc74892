"""OpenAI's response formats (deployments/speech_formats.py): each decodes back to the audio it
was given, and pcm streamed in any chunking is byte for byte pcm of the whole."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from deployments.speech_formats import MEDIA_TYPES, PCMStream, encode

TONE = (0.5 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)).astype(np.float32)


def test_pcm_chunks_join_into_the_whole_for_any_chunking():
    whole = encode(TONE, "pcm")
    for sizes in ([16_000], [1, 7, 320, 3000, 12_672], [640] * 25):
        stream, parts, at = PCMStream(), [], 0
        for size in sizes:
            parts.append(stream.push(TONE[at:at + size]))
            at += size
        assert b"".join(parts) + stream.finish() == whole


def test_pcm_is_24_khz_s16le_of_the_same_signal():
    pcm = np.frombuffer(encode(TONE, "pcm"), "<i2") / 32767
    assert len(pcm) == len(TONE) * 3 // 2
    reference = resample_poly(TONE, 3, 2)
    assert np.abs(pcm[100:-100] - reference[100:-100]).max() < 2e-3  # away from the edges


@pytest.mark.parametrize("fmt", sorted(set(MEDIA_TYPES) - {"pcm"}))
def test_each_file_format_decodes_to_the_tone(fmt):
    data = encode(TONE, fmt)
    if fmt == "aac":
        with av.open(io.BytesIO(data)) as container:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    else:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == 16_000
    assert abs(len(audio) - len(TONE)) <= 2 * 1152 + 1024  # mp3/aac priming and padding
    spectrum = np.abs(np.fft.rfft(audio[:16_000] if len(audio) >= 16_000 else audio, n=16_000))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # the tone survives every codec


@pytest.mark.parametrize("fmt", sorted(MEDIA_TYPES))
def test_empty_audio_encodes_without_error(fmt):
    assert isinstance(encode(np.zeros(0, np.float32), fmt), bytes)
