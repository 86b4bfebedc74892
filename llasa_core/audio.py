"""Audio I/O and joining for the whole project: everything inside is 16 kHz mono float32 in [-1, 1].

soundfile reads and writes, scipy resamples (polyphase, exact for rational ratios); torchaudio
has no CPU build that matches the pinned torch.
"""

from __future__ import annotations

import io
import re
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """Audio that cannot be used; the message says what is wrong and what to send instead."""


# A mixdown quieter than its loudest channel by more than this (dB) has lost the voice to phase
# cancellation (one channel inverted, a mid/side recording): the loudest channel is used instead.
MAX_MIXDOWN_LOSS_DB = 12.0


def downmix(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) -> mono: the mean of the channels, unless that cancels the signal (see
    MAX_MIXDOWN_LOSS_DB), in which case the loudest channel alone."""
    if not len(samples):
        return np.zeros(0, samples.dtype)
    mixed = samples.mean(axis=1)
    channel_rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=0))
    loudest = int(np.argmax(channel_rms))
    mixed_rms = float(np.sqrt(np.mean(np.square(mixed, dtype=np.float64))))
    if mixed_rms < channel_rms[loudest] * 10 ** (-MAX_MIXDOWN_LOSS_DB / 20):
        return np.ascontiguousarray(samples[:, loudest])
    return mixed


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Downmix to mono (`downmix`) and resample to 16 kHz float32."""
    if sample_rate <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate}")
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 2:  # soundfile layout: (frames, channels)
        audio = downmix(audio)
    if audio.ndim != 1:
        raise AudioError(f"expected mono or (frames, channels) audio, got shape {audio.shape}")
    if sample_rate != SAMPLE_RATE:
        g = gcd(sample_rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, sample_rate // g).astype(np.float32)
    return audio


# Decoded samples (frames x channels) read_audio takes at most: 256 MB of float32, about 11 min of
# 48 kHz stereo. Headers can claim anything and FLAC expands a few bytes into a block of silence,
# so the file is decoded in blocks and the count checked as it grows, never trusted up front.
MAX_DECODED_SAMPLES = 64_000_000
MAX_CHANNELS = 16


def read_audio(data: bytes | str, max_samples: int = MAX_DECODED_SAMPLES,
               max_seconds: float | None = None) -> np.ndarray:
    """Read a WAV/FLAC/OGG file (path or bytes) into 16 kHz mono float32.

    Whatever the bytes are, the only exception is AudioError, and memory stays bounded by
    `max_samples` decoded (and resampled) samples, and by `max_seconds` of audio if given. A file
    cut short (its header promises more samples than it holds) is refused, not half read.
    """
    try:
        with sf.SoundFile(io.BytesIO(data) if isinstance(data, bytes) else data) as f:
            _refuse_truncated_wav(f.extra_info)
            rate, channels, promised = int(f.samplerate), int(f.channels), int(f.frames)
            if not 1 <= channels <= MAX_CHANNELS:
                raise AudioError(f"audio has {channels} channels; send mono or stereo")
            if not 1_000 <= rate <= 768_000:
                raise AudioError(f"audio has sample rate {rate} Hz; send 8 to 48 kHz")
            blocks, total = [], 0
            while True:
                block = f.read(max(1, 1_000_000 // channels), dtype="float32", always_2d=True)
                if not len(block):
                    break
                total += block.size
                if total > max_samples or total / channels * SAMPLE_RATE / rate > max_samples:
                    raise AudioError(f"audio is longer than this reader takes ({max_samples} samples)")
                if max_seconds is not None and total / channels > max_seconds * rate:
                    raise AudioError(f"audio is over the limit of {max_seconds:g} s: send a shorter clip")
                blocks.append(block)
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001  (libsndfile and soundfile say many things about garbage)
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AudioError(f"could not read audio ({text}); send a WAV, FLAC or OGG file") from err
    samples = np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float32)
    if 0 < promised < 2**62 and len(samples) < promised:
        raise AudioError(f"audio is truncated: its header promises {promised} samples but the file holds "
                         f"{len(samples)}; send the whole file")
    audio = to_mono_16k(samples, rate)
    if audio.size == 0:
        raise AudioError("audio is empty")
    if not np.all(np.isfinite(audio)):
        raise AudioError("audio contains NaN or infinite samples")
    return audio


# libsndfile's own header log, e.g. "data : 32000 (should be 2000)": the data chunk claims more
# bytes than follow it. 0 and 0xFFFFFFFF are the sizes streaming writers leave; those are fine.
_WAV_DATA_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _refuse_truncated_wav(header_log: str) -> None:
    match = _WAV_DATA_SHORT.search(header_log)
    if match:
        claimed, present = int(match.group(1)), int(match.group(2))
        if claimed not in (0, 0xFFFFFFFF) and present < claimed:
            raise AudioError(f"audio is truncated: the WAV header promises {claimed} bytes of samples but the "
                             f"file holds {present}; send the whole file")


def write_wav(audio: np.ndarray, path_or_none: str | None = None, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Write 16-bit PCM WAV; returns the bytes (and writes `path_or_none` if given)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    if path_or_none:
        with open(path_or_none, "wb") as f:
            f.write(data)
    return data


CROSSFADE_SAMPLES = 160  # 10 ms at 16 kHz: long enough to hide the seam, short enough to keep transients


def continue_audio(previous: np.ndarray, window: np.ndarray, new_tokens: int, samples_per_token: int,
                   redo_tokens: int = 0, crossfade: int = CROSSFADE_SAMPLES) -> np.ndarray:
    """`previous` audio extended by the new codes of a windowed decode.

    `window` is the decode of (left-context codes + new codes). Its new samples are kept, and so are
    those of the last `redo_tokens` context codes, which replace the end of `previous`: that end was
    decoded without the codes that follow it. The `crossfade` samples before the seam fade from
    `previous` into the window's own audio of the same codes, so the seam has no step.
    """
    keep = (new_tokens + redo_tokens) * samples_per_token
    seam = len(window) - keep
    if seam < 0 or redo_tokens * samples_per_token > len(previous):
        raise ValueError(f"a window of {len(window)} samples cannot redo {redo_tokens} tokens "
                         f"and add {new_tokens} to {len(previous)} samples")
    previous = previous[: len(previous) - redo_tokens * samples_per_token]
    fade = min(crossfade, len(previous), seam)
    if fade <= 0:
        return np.concatenate([previous, window[seam:]]).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1]
    faded = previous[len(previous) - fade :] * (1.0 - ramp) + window[seam - fade : seam] * ramp
    return np.concatenate([previous[: len(previous) - fade], faded, window[seam:]]).astype(np.float32)
