"""The voice store (deployments/voices.py) on a local directory and on an fsspec URL: a voice
comes back as stored, a taken name is never overwritten, scratch files are never listed, and
names that could escape the store are refused."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from deployments.voices import VoiceExists, VoiceNameError, VoiceNotFound, VoiceStore, new_voice


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> VoiceStore:
    url = str(tmp_path / "voices") if request.param == "local" else f"memory://voices-{uuid.uuid4().hex}"
    return VoiceStore(url)


def voice(name: str = "joe", seed: int = 0):
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, 16_000 * 2).astype(np.float32)
    return new_voice(name, "What the clip says.", audio, [5, 17, 65_535], "models/llasa-demo/codec")


def test_a_voice_comes_back_as_stored(store):
    saved = voice()
    store.save(saved)
    loaded = store.load("joe")
    assert np.array_equal(loaded.audio, saved.audio) and loaded.audio.dtype == np.float32
    assert loaded.codes == [5, 17, 65_535] and loaded.transcript == "What the clip says."
    assert loaded.codec == "models/llasa-demo/codec"
    assert loaded.summary()["seconds"] == 2.0
    assert store.names() == ["joe"]


def test_a_taken_name_is_kept_and_scratch_files_are_not_voices(store):
    store.save(voice(seed=0))
    with pytest.raises(VoiceExists, match="DELETE"):
        store.save(voice(seed=1))
    assert np.array_equal(store.load("joe").audio, voice(seed=0).audio)
    store.fs.pipe_file(f"{store.root}/.ann.{uuid.uuid4().hex}.tmp", b"half a voice")  # a write cut short
    assert store.names() == ["joe"]


def test_delete_then_unknown(store):
    store.save(voice())
    store.delete("joe")
    assert store.names() == []
    with pytest.raises(VoiceNotFound, match="POST /v1/audio/voices"):
        store.load("joe")
    with pytest.raises(VoiceNotFound):
        store.delete("joe")


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "default", "x" * 65, "naïve"])
def test_names_that_could_escape_or_collide_are_refused(store, name):
    with pytest.raises(VoiceNameError, match="not usable"):
        new_voice(name, "t", np.zeros(1, np.float32), [], "codec")
    with pytest.raises(VoiceNameError):
        store.load(name)
