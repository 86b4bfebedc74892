"""The OpenAI-compatible HTTP API against the running service (tests/serve_support.py), with the
official `openai` package as the client: speech in every format, SSE, saved voices, errors in
OpenAI's shape, and the search metrics Ray exports for Prometheus."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import uuid

import av
import httpx2 as httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from serve_support import ROOT, TEST_API_KEY, speech_wav

from llasa_client import SynthesisOptions, TTSClient

QUICK = {"max_speech_tokens": 20, "step_tokens": 10, "seed": 11}


@pytest.fixture(scope="module")
def client(service) -> openai.OpenAI:
    with openai.OpenAI(base_url=f"{service.http_url}/v1", api_key=TEST_API_KEY, max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def http(service) -> httpx.Client:
    with httpx.Client(base_url=service.http_url, headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                      timeout=120) as c:
        yield c


def speak(client: openai.OpenAI, fmt: str = "wav", voice: str = "default", **search):
    return client.audio.speech.create(model="llasa", voice=voice, input="Hello from the HTTP API.",
                                      response_format=fmt, extra_body={"search": {**QUICK, **search}})


def decoded(data: bytes) -> np.ndarray:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == 16_000
    return audio


def test_plain_speech_is_the_chosen_audio_of_the_search(client):
    response = speak(client, n=2)
    assert response.response.headers["content-type"] == "audio/wav"
    assert response.response.headers["x-llasa-strategy"] == "best_of_n"
    audio = decoded(response.content)
    # 20 speech tokens at 50 per second, at most
    assert 0 < len(audio) <= 20 * 320


def test_streamed_audio_equals_the_plain_answer_for_one_seed(client):
    plain = speak(client).content
    with client.audio.speech.with_streaming_response.create(
            model="llasa", voice="default", input="Hello from the HTTP API.", response_format="wav",
            extra_body={"search": QUICK}) as response:
        streamed = b"".join(response.iter_bytes())
    assert streamed == plain


def test_sse_sends_progress_then_the_search_then_openai_audio_events(client):
    with client.audio.speech.with_streaming_response.create(
            model="llasa", voice="default", input="Hello from the HTTP API.", response_format="flac",
            stream_format="sse", extra_body={"search": {**QUICK, "strategy": "beam", "n": 4, "beam_width": 2}}
    ) as response:
        assert response.http_response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["speech.audio.delta", "speech.audio.done"]
    assert kinds[-3] == "llasa.search.result"
    steps = [e["step"] for e in events if e["type"] == "llasa.search.progress"]
    assert steps and steps == sorted(steps)  # one event per search step, in order
    result = events[-3]
    assert result["strategy"] == "beam" and result["candidates"]
    audio = decoded(base64.b64decode(events[-2]["audio"]))
    assert len(audio) > 0
    usage = events[-1]["usage"]
    assert usage["output_tokens"] == result["lm_generated_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_pcm_streams_as_the_search_fixes_its_audio_and_joins_into_the_whole(client):
    search = {"max_speech_tokens": 60, "step_tokens": 10, "seed": 5}  # n = 1: audio is fixed step by step
    with client.audio.speech.with_streaming_response.create(
            model="llasa", voice="default", input="Hello from the HTTP API.", response_format="pcm",
            stream_format="sse", extra_body={"search": search}) as response:
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    deltas = [i for i, kind in enumerate(kinds) if kind == "speech.audio.delta"]
    assert len(deltas) >= 2 and deltas[0] < kinds.index("llasa.search.result")  # audio before the search ended
    joined = b"".join(base64.b64decode(events[i]["audio"]) for i in deltas)
    plain = client.audio.speech.create(model="llasa", voice="default", input="Hello from the HTTP API.",
                                       response_format="pcm", extra_body={"search": search}).content
    assert joined == plain and len(plain) > 0
    wav = client.audio.speech.create(model="llasa", voice="default", input="Hello from the HTTP API.",
                                     response_format="wav", extra_body={"search": search}).content
    assert len(plain) == 2 * (len(decoded(wav)) * 3 // 2)  # 24 kHz s16le of the same audio


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "pcm"])
def test_every_response_format_decodes_to_the_same_length(client, fmt):
    reference = decoded(speak(client).content)
    data = speak(client, fmt).content
    if fmt == "pcm":  # OpenAI's pcm: 24 kHz signed 16-bit little endian
        assert len(data) == 2 * len(reference) * 3 // 2
        return
    if fmt == "aac":
        with av.open(io.BytesIO(data)) as container:
            samples = sum(frame.samples for frame in container.decode(audio=0))
    else:
        samples = len(decoded(data))
    # Codec padding: mp3/aac add up to a frame or two of priming and padding.
    assert abs(samples - len(reference)) <= 2 * 1152 + 1024


@pytest.mark.parametrize(("kwargs", "status", "param", "words"), [
    ({"speed": 1.5}, 400, "speed", "speed 1.0 only"),
    ({"response_format": "ogg"}, 400, "response_format", "use one of"),
    ({"voice": "nobody-" + uuid.uuid4().hex[:6]}, 404, "voice", "upload it with POST /v1/audio/voices"),
    ({"extra_body": {"search": {"n": 99}}}, 400, None, "max_n"),
    ({"extra_body": {"search": {"strategy": "greedy"}}}, 400, "search.strategy", "best_of_n"),
    ({"extra_body": {"search": {"verifiers": {"mos": 1.0}}}}, 400, None, "unknown verifier"),
    ({"extra_body": {"temperature": 0.5}}, 400, "temperature", "Extra inputs"),
    ({"input": "?!"}, 400, None, "nothing to speak"),
])
def test_bad_requests_get_openai_errors_that_say_what_to_fix(client, kwargs, status, param, words):
    call = {"model": "llasa", "voice": "default", "input": "Hello.", **kwargs}
    with pytest.raises(openai.APIStatusError) as info:
        client.audio.speech.create(**call)
    assert info.value.status_code == status
    error = info.value.body  # the SDK unwraps {"error": {...}}
    assert set(error) == {"message", "type", "param", "code"}
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


def test_malformed_json_oversized_body_and_missing_key(http, service):
    bad = http.post("/v1/audio/speech", content=b"{\"input\": ", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    big = http.post("/v1/audio/speech", json={"model": "llasa", "input": "x" * (70 << 10)})
    assert big.status_code == 413 and "over this server's limit" in big.json()["error"]["message"]
    anonymous = httpx.post(f"{service.http_url}/v1/audio/speech", json={"model": "llasa", "input": "Hi"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert http.get("/v1/server").json()["api_version"] == "llasa.tts.v1"


def test_sse_result_carries_word_timestamps_and_the_judge_when_asked(client):
    with client.audio.speech.with_streaming_response.create(
            model="llasa", voice="default", input="Hello from the HTTP API.", response_format="wav",
            stream_format="sse", extra_body={"search": {**QUICK, "word_timestamps": True, "judge": True}}
    ) as response:
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    result = next(e for e in events if e["type"] == "llasa.search.result")
    assert result["judge"]["verifier"] == "judge" and result["judge"]["metric"] == "wer"
    assert 0 <= result["judge"]["score"] <= 1 and "judge" not in result["verifiers_used"]
    assert isinstance(result["words"], list)
    assert all(0 <= w["start_seconds"] <= w["end_seconds"] and w["word"] for w in result["words"])
    with client.audio.speech.with_streaming_response.create(  # not asked: not sent
            model="llasa", voice="default", input="Hello from the HTTP API.", response_format="wav",
            stream_format="sse", extra_body={"search": QUICK}) as response:
        plain = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    assert not {"words", "judge"} & set(next(e for e in plain if e["type"] == "llasa.search.result"))


@pytest.mark.parametrize("asked", ["word_timestamps", "judge"])
def test_word_timestamps_and_judge_need_sse(client, asked):
    with pytest.raises(openai.BadRequestError) as info:
        speak(client, **{asked: True})
    assert "stream_format='sse'" in info.value.body["message"] and info.value.body["param"] == f"search.{asked}"


def upload(http, name: str, audio: bytes, transcript: str = "This is my voice, speaking clearly."):
    return http.post("/v1/audio/voices", data={"name": name, "transcript": transcript},
                     files={"audio": ("voice.wav", audio, "audio/wav")})


def test_saved_voice_speaks_as_the_same_reference_sent_inline(client, http, service):
    name = f"joe-{uuid.uuid4().hex[:8]}"
    reference = speech_wav()
    created = upload(http, name, reference)
    assert created.status_code == 201, created.text
    assert created.json()["codes"] > 0 and created.json()["seconds"] > 1
    assert upload(http, name, reference).status_code == 409  # never overwritten by accident
    assert name in [v["name"] for v in http.get("/v1/audio/voices").json()["data"]]
    assert http.get(f"/v1/audio/voices/{name}").json()["transcript"] == "This is my voice, speaking clearly."

    response = speak(client, voice=name)
    saved = decoded(response.content)
    # the codes stored at upload go straight into the prompt: no codec call (a handle call takes ms)
    assert float(response.response.headers["x-llasa-reference-encode-seconds"]) < 1e-3
    with TTSClient(service.address) as tts:
        inline = tts.synthesize("Hello from the HTTP API.", SynthesisOptions(
            reference_audio=reference, reference_text="This is my voice, speaking clearly.", **QUICK))
    assert np.allclose(saved, decoded(inline.audio), atol=1e-4)

    assert http.delete(f"/v1/audio/voices/{name}").json()["deleted"] is True
    assert http.get(f"/v1/audio/voices/{name}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        speak(client, voice=name)


@pytest.mark.parametrize(("name", "audio", "status", "words"), [
    ("quiet", lambda: sf_bytes(np.zeros(32_000, np.float32)), 400, "silent"),
    ("garbage", lambda: b"not audio at all", 400, "could not read audio"),
    ("../etc", speech_wav, 400, "not usable"),
    ("big", lambda: b"\0" * 3_600_000, 413, "over this server's limit"),
])
def test_bad_voices_are_refused_and_nothing_is_stored(http, name, audio, status, words):
    response = upload(http, name, audio())
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert name not in [v["name"] for v in http.get("/v1/audio/voices").json()["data"]]


def sf_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, 16_000, format="WAV")
    return buffer.getvalue()


def test_search_metrics_reach_prometheus_with_every_name_the_dashboard_plots(client, service):
    speak(client, n=2)
    with TTSClient(service.address) as tts:  # gRPC searches are counted too
        tts.synthesize("Hello over gRPC.", SynthesisOptions(strategy="beam", n=3, beam_width=1, step_tokens=10,
                                                            max_speech_tokens=20, seed=2))
    with pytest.raises(openai.APIStatusError) as info:  # a search out of time: 504, counted as a failure
        speak(client, max_speech_tokens=500, step_tokens=50, timeout_seconds=0.05)
    assert info.value.status_code == 504 and "did not finish within" in info.value.body["message"]
    dashboard = (ROOT / "examples" / "grafana-dashboard.json").read_text()
    wanted = sorted(set(re.findall(r"ray_llasa_\w+", dashboard)))
    assert len(wanted) >= 7

    def exported(text: str) -> list[str]:
        """What the scrape still lacks: the dashboard's names, and this test's own searches (earlier
        tests' searches already export the names, so the names alone say nothing of these)."""
        searches = [line for line in text.splitlines() if line.startswith("ray_llasa_searches_total{")]
        lacking = [name for name in wanted if name not in text]
        if not any('strategy="best_of_n"' in line and 'n="2"' in line and 'api="http"' in line for line in searches):
            lacking.append("best_of_n n=2 over http")
        if not any('strategy="beam"' in line and 'n="3"' in line and 'api="grpc"' in line for line in searches):
            lacking.append("beam n=3 over grpc")
        if 'status="504"' not in text:
            lacking.append("the 504")
        return lacking

    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:  # the agent exports every few seconds
        text = httpx.get(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10).text
        if not exported(text):
            break
        time.sleep(2)
    assert not exported(text), exported(text)
    assert 'stage="codec"' in text and 'kind="generated"' in text
