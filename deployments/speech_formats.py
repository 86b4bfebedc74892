"""OpenAI's `response_format`s for 16 kHz mono float audio, encoded by maintained libraries.

wav, flac, mp3 and opus (in Ogg) go through libsndfile (soundfile's bundled 1.2 build); aac
(ADTS) through FFmpeg (PyAV). pcm is what OpenAI documents it to be: raw signed 16-bit
little-endian samples at 24 kHz, so a client written for OpenAI plays it at the right speed; it
is the one format that streams chunk by chunk (`PCMStream`).
"""

from __future__ import annotations

import io

import av
import numpy as np
import soundfile as sf
from scipy.signal import firwin, lfilter

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
        stream = PCMStream()
        return stream.push(audio) + stream.finish()
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


class PCMStream:
    """16 kHz float chunks -> OpenAI's pcm (24 kHz s16le): up by 3, a linear-phase low-pass at
    8 kHz, down by 2. The filter's state carries from chunk to chunk, so the bytes of the chunks,
    joined, are the bytes of the whole audio converted at once."""

    TAPS = firwin(121, 1 / 3) * 3  # at the 48 kHz upsampled rate; x3 keeps the level after zero-stuffing
    DELAY = (len(TAPS) - 1) // 2  # upsampled samples of filter delay, dropped at the start

    def __init__(self):
        self._state = np.zeros(len(self.TAPS) - 1)
        self._upsampled = 0  # upsampled samples filtered so far
        self._inputs = 0  # 16 kHz samples pushed
        self._outputs = 0  # 24 kHz samples sent

    @property
    def pushed(self) -> int:
        return self._inputs

    def push(self, audio: np.ndarray) -> bytes:
        self._inputs += len(audio)
        return self._filter(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0), self._inputs * 3 // 2)

    def finish(self) -> bytes:
        """The last samples, still inside the filter: flushed with silence."""
        return self._filter(np.zeros(self.DELAY // 3 + 2), self._inputs * 3 // 2)

    def _filter(self, audio: np.ndarray, limit: int) -> bytes:
        if not len(audio) or self._outputs >= limit:
            return b""
        up = np.zeros(3 * len(audio))
        up[::3] = audio
        filtered, self._state = lfilter(self.TAPS, 1.0, up, zi=self._state)
        first = max(self.DELAY, self._upsampled)  # global index of the first kept upsampled sample
        first += (first - self.DELAY) % 2
        kept = filtered[first - self._upsampled::2][: max(limit - self._outputs, 0)]
        self._upsampled += len(up)
        self._outputs += len(kept)
        return (np.clip(kept, -1.0, 1.0) * 32767).astype("<i2").tobytes()
