import numpy as np
import pytest

from llasa_core.audio import AudioError, read_audio, to_mono_16k, write_wav
from llasa_core.codec import kaldi_fbank_features


def tone(seconds: float, rate: int = 16_000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_encode_gives_50_codes_per_second_in_range(tiny_codec):
    codes = tiny_codec.encode(tone(1.3))
    assert len(codes) == int(1.3 * 16_000) // 320 == 65
    assert all(0 <= c < 65_536 for c in codes)


def test_semantic_features_line_up_with_acoustic_frames():
    for seconds in (0.5, 1.0, 2.37):
        audio = tone(seconds)
        features = kaldi_fbank_features(audio, hop_length=320)
        assert features.shape == (-(-(len(audio) + 1) // 320), 160)
        np.testing.assert_allclose(features.mean(0), 0.0, atol=0.2)


def test_decode_batch_equals_one_by_one(tiny_codec):
    rng = np.random.default_rng(0)
    batch = [rng.integers(0, 65_536, n).tolist() for n in (10, 25, 10, 0)]
    together = tiny_codec.decode(batch)
    for codes, wave in zip(batch, together):
        assert wave.shape == (len(codes) * 320,)
        if codes:
            np.testing.assert_allclose(wave, tiny_codec.decode([codes])[0], atol=1e-5)


def test_round_trip_keeps_the_length(tiny_codec):
    wave = tiny_codec.decode([tiny_codec.encode(tone(2.0))])[0]
    assert wave.shape == (32_000,) and wave.dtype == np.float32


def test_read_audio_downmixes_and_resamples(tmp_path):
    stereo = np.stack([tone(1.0, 44_100), tone(1.0, 44_100)], axis=1)
    path = tmp_path / "stereo.wav"
    import soundfile as sf

    sf.write(path, stereo, 44_100)
    audio = read_audio(path.read_bytes())
    assert audio.shape == (16_000,) and audio.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16_000 / len(audio) - 220.0) < 2.0


def test_read_audio_stops_at_a_duration_limit():
    two_seconds = write_wav(tone(2.0))
    assert read_audio(two_seconds, max_seconds=2.0).shape == (32_000,)
    with pytest.raises(AudioError, match="over the limit of 1.5 s: send a shorter clip"):
        read_audio(two_seconds, max_seconds=1.5)


def test_unreadable_audio_says_what_to_send():
    with pytest.raises(AudioError, match="WAV, FLAC or OGG"):
        read_audio(b"this is not audio")
    with pytest.raises(AudioError, match="empty"):
        read_audio(write_wav(np.zeros(0, dtype=np.float32)))
    with pytest.raises(AudioError, match="sample rate"):
        to_mono_16k(np.zeros(10), 0)
