"""Saved voices over gRPC (CreateVoice, ListVoices, GetVoice, DeleteVoice, SynthesizeRequest.voice_id)
against the running service (tests/serve_support.py): the same store and rules as the HTTP API."""

from __future__ import annotations

import io
import json
import uuid

import grpc
import httpx2 as httpx
import numpy as np
import pytest
import soundfile as sf
from serve_support import TEST_API_KEY, speech_wav

from llasa_client import SynthesisOptions, TTSClient
from llasa_client.client import TTSError

QUICK = dict(max_speech_tokens=20, step_tokens=10, seed=11)
TRANSCRIPT = "This is my voice, speaking clearly."


@pytest.fixture(scope="module")
def tts(service):
    with TTSClient(service.address) as client:
        yield client


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.http_url, headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                      timeout=120) as client:
        yield client


def status_of(call, *args, **kwargs) -> TTSError:
    with pytest.raises(TTSError) as info:
        call(*args, **kwargs)
    return info.value


def test_a_voice_created_over_grpc_speaks_as_the_inline_reference_and_is_shared_with_http(tts, http):
    name = f"ann-{uuid.uuid4().hex[:8]}"
    reference = speech_wav()
    created = tts.create_voice(name, reference, TRANSCRIPT)
    assert created.id == name and created.transcript == TRANSCRIPT and created.codes > 0 and created.seconds > 1
    assert status_of(tts.create_voice, name, reference, TRANSCRIPT).code == grpc.StatusCode.ALREADY_EXISTS
    assert name in [v.id for v in tts.list_voices()]
    assert tts.get_voice(name).codes == created.codes
    seen = http.get(f"/v1/audio/voices/{name}").json()  # one store for both APIs
    assert seen["transcript"] == TRANSCRIPT and seen["codes"] == created.codes

    saved = tts.synthesize("Hello from a saved voice.", SynthesisOptions(voice_id=name, **QUICK))
    inline = tts.synthesize("Hello from a saved voice.", SynthesisOptions(
        reference_audio=reference, reference_text=TRANSCRIPT, **QUICK))
    assert saved.timings.reference_encode_seconds < 1e-3 < inline.timings.reference_encode_seconds
    assert saved.prompt_tokens == inline.prompt_tokens > 70  # the stored codes are the reference's
    assert np.allclose(sf.read(io.BytesIO(saved.audio))[0], sf.read(io.BytesIO(inline.audio))[0], atol=1e-4)

    both = status_of(tts.synthesize, "Hi", SynthesisOptions(voice_id=name, reference_audio=reference,
                                                            reference_text=TRANSCRIPT, **QUICK))
    assert both.code == grpc.StatusCode.INVALID_ARGUMENT and "not both" in both.details

    tts.delete_voice(name)
    assert name not in [v.id for v in tts.list_voices()]
    assert http.get(f"/v1/audio/voices/{name}").status_code == 404
    for call, args in [(tts.get_voice, (name,)), (tts.delete_voice, (name,)),
                       (tts.synthesize, ("Hi", SynthesisOptions(voice_id=name, **QUICK)))]:
        error = status_of(call, *args)
        assert error.code == grpc.StatusCode.NOT_FOUND and f"no saved voice named {name!r}" in error.details


def test_a_voice_uploaded_over_http_is_named_by_voice_id(tts, http):
    name = f"bob-{uuid.uuid4().hex[:8]}"
    response = http.post("/v1/audio/voices", data={"name": name, "transcript": TRANSCRIPT},
                         files={"audio": ("voice.wav", speech_wav(), "audio/wav")})
    assert response.status_code == 201, response.text
    try:
        spoken = tts.synthesize("Hello.", SynthesisOptions(voice_id=name, **QUICK))
        assert spoken.prompt_tokens > 70 and spoken.audio
    finally:
        http.delete(f"/v1/audio/voices/{name}")


@pytest.mark.parametrize(("name", "audio", "transcript", "words"), [
    ("garbage", b"not audio at all", TRANSCRIPT, "audio: could not read audio"),
    ("../etc", None, TRANSCRIPT, "not usable"),
    ("mute", None, "  ", "transcript is empty"),
])
def test_bad_voices_are_invalid_arguments_and_nothing_is_stored(tts, name, audio, transcript, words):
    error = status_of(tts.create_voice, name, audio if audio is not None else speech_wav(), transcript)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and words in error.details
    assert name not in [v.id for v in tts.list_voices()]


def test_cli_voices_create_list_synthesize_delete(service, tmp_path, capsys):
    from llasa_client import cli

    name, clip = f"cli-{uuid.uuid4().hex[:8]}", tmp_path / "voice.wav"
    clip.write_bytes(speech_wav())
    base = ["--address", service.address]
    assert cli.main([*base, "voices", "create", name, "--audio", str(clip), "--transcript", TRANSCRIPT]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == name
    assert cli.main([*base, "voices", "list"]) == 0
    assert name in [v["id"] for v in json.loads(capsys.readouterr().out)["voices"]]
    out = tmp_path / "hi.wav"
    assert cli.main([*base, "synthesize", "Hi.", "--voice", name, "--quiet", "-o", str(out),
                     "--max-speech-tokens", "20", "--seed", "3"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["promptTokens"] > 70
    assert cli.main([*base, "voices", "delete", name]) == 0
    capsys.readouterr()
    assert cli.main([*base, "voices", "get", name]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
