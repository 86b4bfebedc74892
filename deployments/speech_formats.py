"""OpenAI's `response_format`s for 16 kHz mono float audio, encoded by maintained libraries.

wav, flac, mp3 and opus (in Ogg) go through libsndfile (soundfile's bundled 1.2 build); aac
(ADTS) through FFmpeg (PyAV). pcm is what OpenAI documents it to be: raw signed 16-bit
little-endian samples at 24 kHz, so a client written for OpenAI plays it at the right speed.
"""

from __future__ import annotations

import io

import av
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
PCM_RATE = 24_000

MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/ogg; codecs=opus",
               "aac": "audio/aac", "pcm": "audio/pcm"}
_SOUNDFILE = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"),
              "opus": ("OGG", "OPUS")}


def encode(audio: np.ndarray, fmt: str) -> bytes:
    """`audio` (16 kHz mono float) as a file (or raw pcm) of `fmt`, one of MEDIA_TYPES."""
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if fmt == "pcm":
        return (resample_poly(audio, PCM_RATE // 8000, SAMPLE_RATE // 8000).clip(-1, 1) * 32767).astype("<i2").tobytes()
    if fmt == "aac":
        return _aac(audio)
    container, subtype = _SOUNDFILE[fmt]
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format=container, subtype=subtype)
    return buffer.getvalue()


def _aac(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        if len(audio):
            frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
