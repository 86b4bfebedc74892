"""Fuzzing (hypothesis): the audio decoders in process, and the gRPC API of the running service.

Garbage never crashes anything, never hangs, and only ever gets a documented answer: the audio
readers raise their one error type; the service answers OK or a documented status (never
INTERNAL or UNKNOWN) and still answers DescribeServer afterwards.
"""

from __future__ import annotations

import base64
import io
import json
import time
from urllib.parse import quote

import grpc
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deployments.config import Limits
from deployments.convert import decode_reference
from deployments.orchestrator import RequestError
from deployments.voices import VOICE_NAME
from llasa_client import TTSClient
from llasa_core.audio import AudioError, read_audio
from protos.llasa.tts.v1 import tts_pb2 as pb
from protos.llasa.tts.v1 import tts_pb2_grpc

SERVICE_STATUSES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND}  # NOT_FOUND: voice_id


def _encoded(fmt: str, subtype: str, rate: int, channels: int, seconds: float) -> bytes:
    frames = max(1, int(rate * seconds))
    wave = 0.2 * np.sin(np.arange(frames * channels).reshape(frames, channels) * 0.05)
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


SEEDS = [_encoded("WAV", "PCM_16", 16_000, 1, 0.3), _encoded("WAV", "FLOAT", 22_050, 2, 0.2),
         _encoded("FLAC", "PCM_16", 44_100, 1, 0.2), _encoded("OGG", "VORBIS", 16_000, 1, 0.3),
         _encoded("WAV", "PCM_U8", 8_000, 1, 0.2)]


@st.composite
def audio_bytes(draw) -> bytes:
    """Random bytes, or a real file in some format with bytes flipped, cut off or spliced."""
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "header", "fields"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == "fields":  # a WAV header that lies: channels, rate, byte rate, block align, sizes
        data = bytearray(SEEDS[0])
        for offset, width in draw(st.lists(st.sampled_from([(4, 4), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2),
                                                            (40, 4)]), min_size=1, max_size=3)):
            data[offset:offset + width] = draw(st.integers(0, 256**width - 1)).to_bytes(width, "little")
        return bytes(data)
    if kind == "truncated":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if kind == "header":  # a real header followed by garbage
        cut = draw(st.integers(0, 64))
        return bytes(data[:cut]) + draw(st.binary(max_size=2048))
    for _ in range(draw(st.integers(1, 12))):
        position = draw(st.integers(0, min(len(data) - 1, 200) if draw(st.booleans()) else len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(audio_bytes())
def test_read_audio_raises_only_audio_error(data):
    started = time.monotonic()
    try:
        audio = read_audio(data)
    except AudioError:
        pass
    else:
        assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0 and np.all(np.isfinite(audio))
    assert time.monotonic() - started < 10


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(audio_bytes())
def test_service_reference_decoder_raises_only_request_error(data):
    started = time.monotonic()
    limits = Limits(max_reference_seconds=5.0)
    try:
        audio = decode_reference(data, limits)
    except RequestError as err:
        assert str(err)
    else:
        assert audio.dtype == np.float32 and 0 < audio.size <= 5.0 * 16_000 + 1
    assert time.monotonic() - started < 10


# The gRPC API ----------------------------------------------------------------------------------------
def _floats():
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(-1, 3, width=32))


def _uint32():
    return st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1))


def _weights():
    names = st.one_of(st.sampled_from(["asr", "speaker", "mos", ""]), st.text(max_size=30))
    return st.dictionaries(names, st.one_of(st.floats(allow_nan=True), st.floats(0.1, 2)), max_size=3)


def _optional(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def requests(draw) -> pb.SynthesizeRequest:
    def some(**fields):
        return {k: v for k, v in fields.items() if v is not None}

    search = pb.SearchOptions(
        strategy=draw(st.integers(0, 7)), aggregation=draw(st.integers(0, 7)),
        process_verifiers=draw(_weights()), outcome_verifiers=draw(_weights()),
        allow_partial_verifiers=draw(st.booleans()),
        **some(n=draw(_optional(st.one_of(st.integers(0, 4), _uint32()))),
               beam_width=draw(_optional(st.one_of(st.integers(0, 4), _uint32()))),
               step_tokens=draw(_optional(_uint32())), prm_steps=draw(_optional(_uint32())),
               max_speech_tokens=draw(_optional(st.one_of(st.integers(0, 40), _uint32())))),
    )
    sampling = pb.SamplingOptions(**some(
        temperature=draw(_optional(_floats())), top_p=draw(_optional(_floats())),
        top_k=draw(_optional(_uint32())), repetition_penalty=draw(_optional(_floats())),
        seed=draw(_optional(st.integers(0, 2**64 - 1)))))
    request = pb.SynthesizeRequest(
        text=draw(st.one_of(st.text(max_size=60), st.text(min_size=990, max_size=1100), st.just("Hello there."))),
        language=draw(st.one_of(st.just(""), st.just("en"), st.text(max_size=20))),
        search=search, sampling=sampling, output_format=draw(st.integers(0, 6)),
        **some(timeout_seconds=draw(_optional(st.one_of(st.floats(allow_nan=True), st.floats(0.5, 5))))),
    )
    if draw(st.booleans()):
        request.reference.CopyFrom(pb.ReferenceVoice(audio=draw(audio_bytes()), transcript=draw(st.text(max_size=40))))
    if draw(st.booleans()):
        request.voice_id = draw(_voice_names().map(_sendable))
    return request


@st.composite
def near_valid_requests(draw) -> pb.SynthesizeRequest:
    """A small valid request with up to two fields swapped for the garbage of `requests()`, so
    the fuzz reaches the search, the stages and the response encoders too."""
    request = pb.SynthesizeRequest(text="Fuzzed but fine.", search=pb.SearchOptions(
        strategy=pb.STRATEGY_BEAM, n=2, beam_width=2, step_tokens=10, max_speech_tokens=20,
        process_verifiers={"speaker": 1.0}), sampling=pb.SamplingOptions(seed=1), timeout_seconds=10)
    garbage = draw(requests())
    fields = ["text", "language", "output_format", "timeout_seconds", "reference", "voice_id", "search.strategy",
              "search.n", "search.beam_width", "search.step_tokens", "search.max_speech_tokens",
              "search.process_verifiers", "search.outcome_verifiers", "search.aggregation",
              "search.allow_partial_verifiers", "sampling"]
    for field in draw(st.lists(st.sampled_from(fields), max_size=2, unique=True)):
        owner, source, name = request, garbage, field
        if "." in field:
            part, name = field.split(".")
            owner, source = getattr(request, part), getattr(garbage, part)
        elif field in ("reference", "sampling"):
            owner.ClearField(field)
            if garbage.HasField(field):
                getattr(owner, field).CopyFrom(getattr(source, field))
            continue
        owner.ClearField(name)
        if name in ("process_verifiers", "outcome_verifiers"):
            getattr(owner, name).update(getattr(source, name))
        elif source.DESCRIPTOR.fields_by_name[name].has_presence and not source.HasField(name):
            continue
        else:
            setattr(owner, name, getattr(source, name))
    if draw(st.integers(0, 3)) == 3:  # a saved voice by a random name: traversal, odd text, none stored
        request.voice_id = draw(_voice_names().map(_sendable))
    return request


@pytest.fixture(scope="module")
def stub(service):
    from serve_support import TEST_API_KEY

    channel = grpc.insecure_channel(service.address)
    yield tts_pb2_grpc.TTSServiceStub(channel), (("application", "llasa"), ("x-api-key", TEST_API_KEY))
    channel.close()


def test_grpc_api_answers_garbage_with_documented_statuses(service, stub):
    stub, metadata = stub
    seen: dict[grpc.StatusCode, int] = {}

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(st.one_of(requests(), near_valid_requests(), near_valid_requests()), st.booleans())
    def one(request, streaming):
        try:
            if streaming:
                for _ in stub.SynthesizeStream(request, metadata=metadata, timeout=15):
                    pass
            else:
                stub.Synthesize(request, metadata=metadata, timeout=15)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as err:
            code, details = err.code(), err.details()
        seen[code] = seen.get(code, 0) + 1
        assert code in SERVICE_STATUSES, (code, details, request)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert details and len(details) < 2000  # a message, never an echo of the whole request

    one()
    print("statuses:", {code.name: count for code, count in seen.items()})
    assert seen.get(grpc.StatusCode.INVALID_ARGUMENT) and seen.get(grpc.StatusCode.OK)
    assert seen.get(grpc.StatusCode.NOT_FOUND)  # voice_id reached the voice store
    with TTSClient(service.address) as tts:  # still up
        assert tts.describe(timeout=30).api_version == "llasa.tts.v1"


def test_grpc_api_survives_bytes_that_are_not_a_request(service):
    """Raw garbage as the serialized request message: refused, and the service stays up."""
    from serve_support import TEST_API_KEY

    channel = grpc.insecure_channel(service.address)
    raw = channel.unary_unary("/llasa.tts.v1.TTSService/Synthesize", request_serializer=None,
                              response_deserializer=None)
    metadata = (("application", "llasa"), ("x-api-key", TEST_API_KEY))
    codes = set()

    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(st.binary(min_size=1, max_size=512))
    def one(data):
        try:
            raw(data, metadata=metadata, timeout=15)
            codes.add(grpc.StatusCode.OK)
        except grpc.RpcError as err:
            codes.add(err.code())
            details.add(f"{err.code().name}: {err.details()[:200]}")

    details: set[str] = set()
    one()
    print(details)
    channel.close()
    print("statuses for raw bytes:", sorted(code.name for code in codes))
    # Bytes that do not parse as a SynthesizeRequest never reach the service's code: the gRPC
    # server inside Serve's proxy answers UNKNOWN "Error parsing message" (deployments/README.md).
    for line in details:
        assert line.startswith(tuple(f"{c.name}:" for c in SERVICE_STATUSES)) or (
            line.startswith("UNKNOWN:") and "Error parsing message" in line), line
    with TTSClient(service.address) as tts:
        assert tts.describe(timeout=30).api_version == "llasa.tts.v1"



@pytest.fixture(scope="module")
def real_voice() -> bytes:
    """Speech a reference accepts, so that the fuzz also stores voices (and finds names taken)."""
    from serve_support import speech_wav

    return speech_wav()


def test_grpc_voice_rpcs_answer_garbage_with_documented_statuses(service, stub, real_voice):
    """CreateVoice / GetVoice / DeleteVoice with random names (path traversal too), transcripts
    and audio: OK or a documented status, and nothing odd reaches the store."""
    stub, metadata = stub
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    seen: dict[str, int] = {}
    before = {v.id for v in stub.ListVoices(pb.ListVoicesRequest(), metadata=metadata, timeout=30).voices}

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(st.sampled_from(["CreateVoice", "CreateVoice", "GetVoice", "DeleteVoice"]), _voice_names().map(_sendable),
           st.one_of(audio_bytes(), st.just(real_voice)),
           st.one_of(st.just("This is my voice, speaking clearly."), st.text(max_size=60)))
    @example("CreateVoice", "fuzz-voice", real_voice, "This is my voice, speaking clearly.")
    @example("CreateVoice", "fuzz-voice", real_voice, "This is my voice, speaking clearly.")  # taken
    @example("GetVoice", "fuzz-voice", b"", "")
    def one(rpc, name, audio, transcript):
        request = (pb.CreateVoiceRequest(name=name, audio=audio, transcript=transcript) if rpc == "CreateVoice"
                   else getattr(pb, f"{rpc}Request")(voice_id=name))
        try:
            getattr(stub, rpc)(request, metadata=metadata, timeout=30)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as err:
            code, details = err.code(), err.details()
        key = f"{rpc} {code.name}"
        seen[key] = seen.get(key, 0) + 1
        assert code in allowed, (code, details, rpc, name)
        if code != grpc.StatusCode.OK:
            assert details and len(details) < 2000

    one()
    print("gRPC voice statuses:", dict(sorted(seen.items())))
    assert seen.get("CreateVoice INVALID_ARGUMENT") and any("NOT_FOUND" in key for key in seen)
    assert seen.get("CreateVoice OK") and seen.get("CreateVoice ALREADY_EXISTS") and seen.get("GetVoice OK")
    listed = stub.ListVoices(pb.ListVoicesRequest(), metadata=metadata, timeout=30)
    assert all(VOICE_NAME.fullmatch(v.id) for v in listed.voices), listed
    for voice in [v for v in listed.voices if v.id not in before]:  # leave the shared store as found
        stub.DeleteVoice(pb.DeleteVoiceRequest(voice_id=voice.id), metadata=metadata, timeout=30)
    with TTSClient(service.address) as tts:
        assert tts.describe(timeout=30).api_version == "llasa.tts.v1"


# The HTTP API ----------------------------------------------------------------------------------------
# README "HTTP API": 400 bad field or body, 401 no key, 404 unknown voice or path, 405 wrong method,
# 409 voice name taken, 413 body over the limit, 429 queues full, 503 a stage down, 504 out of time.
# A healthy service under garbage never has a stage down, so 503 counts as a failure here.
SPEECH_STATUSES = {200, 400, 404, 413, 429, 504}
VOICE_STATUSES = {200, 201, 400, 404, 405, 409, 413, 429, 504}
QUICK_SEARCH = {"n": 2, "max_speech_tokens": 20, "step_tokens": 10, "seed": 1, "timeout_seconds": 10,
                "verifiers": {"speaker": 1.0}}


ODD_STRINGS = ["\ud800", "Hi \udfff there.", "\x00", "Hello\x00there.", "\u202eHello.", "\ufeff", "e\u0301",
               "\U0001f642 Hi.", "\uffff", "\r\n", " " * 70]


def _with_lone_surrogate():
    """Text with half a UTF-16 pair in it: JSON's \\ud83d escape can carry one, UTF-8 cannot."""
    return st.tuples(st.text(max_size=12), st.integers(0xD800, 0xDFFF), st.text(max_size=12)).map(
        lambda parts: parts[0] + chr(parts[1]) + parts[2])


def _odd_text(max_size: int = 40):
    """Any unicode, lone surrogates and control characters included (the odd ones often)."""
    return st.one_of(st.sampled_from(ODD_STRINGS), _with_lone_surrogate(),
                     st.text(st.characters(codec=None, exclude_categories=()), max_size=max_size))


def _voice_names():
    return st.one_of(st.sampled_from(["../etc/passwd", "..", ".", "a/../../b", "..%2F..%2Fetc", "%2e%2e", "default",
                                      "x" * 65, "ok-name", "a\\b", "", " ", "voice\x00.npz", "C:\\x"]),
                     _odd_text(70), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True))


def _json_scalars():
    return st.one_of(st.none(), st.booleans(), st.integers(-5, 40), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True), _odd_text(),
                     st.sampled_from(["", "default", "wav", "sse", "beam", "../../etc/passwd", "1e999"]))


def _json_values():
    return st.recursive(_json_scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_odd_text(12), inner, max_size=3)), max_leaves=6)


def _names_to_weights():
    names = st.one_of(st.sampled_from(["speaker", "asr", "judge", "mos", ""]), _odd_text(12))
    return st.dictionaries(names, st.one_of(_floats(), st.integers(-2**70, 2**70), _json_values()), max_size=3)


def _sizes():
    return st.one_of(st.integers(-2, 40), st.integers(-2**70, 2**70), _floats())


# Each field with values of its own type that are wrong (and, for budget fields, some that are right).
_TEXT = _odd_text()
SPEECH_FIELDS = {"model": _TEXT, "input": _TEXT, "response_format": _TEXT, "stream_format": _TEXT,
                 "instructions": _TEXT, "language": _TEXT, "speed": _floats(),
                 "voice": st.one_of(_voice_names(), st.fixed_dictionaries({"id": _json_values()})),
                 "search": _json_values()}
SEARCH_FIELDS = {"strategy": _TEXT, "n": _sizes(), "beam_width": _sizes(), "step_tokens": _sizes(),
                 "max_speech_tokens": _sizes(), "seed": st.integers(-2**70, 2**70), "temperature": _floats(),
                 "timeout_seconds": _floats(), "verifiers": _names_to_weights(),
                 "process_verifiers": _names_to_weights(), "return_scores": _json_values(),
                 "return_candidate_audio": _json_values(), "word_timestamps": st.booleans(), "judge": st.booleans()}
BUDGET_FIELDS = {"n", "beam_width", "step_tokens", "max_speech_tokens", "timeout_seconds"}


@st.composite
def speech_bodies(draw):
    """A JSON value for POST /v1/audio/speech: anything at all, or a small valid request with some
    fields removed, given a wrong value of their type or of any type, or joined by an unknown one."""
    kind = draw(st.sampled_from(["any", "text", "text", "fields", "fields"]))
    if kind == "any":
        return draw(_json_values())
    body = {"model": "llasa", "input": "Fuzzed but fine.", "voice": "default",
            "response_format": draw(st.sampled_from(["wav", "pcm", "flac"])),
            "stream_format": draw(st.sampled_from(["audio", "sse"])), "search": dict(QUICK_SEARCH)}
    if kind == "text":  # odd text (lone surrogates, NULs, bidi marks) where the server reads text
        where = draw(st.sampled_from(["model", "input", "voice", "language", "response_format", "strategy",
                                      "verifiers", "process_verifiers"]))
        text = draw(_odd_text())
        if where in ("strategy", "verifiers", "process_verifiers"):
            body["search"][where] = text if where == "strategy" else {text: 1.0}
        else:
            body[where] = text
        return body
    budget_changed = False  # at most one of the fields that make a search long, so no example runs long
    for level in ("body", "search"):
        where, fields = (body, SPEECH_FIELDS) if level == "body" else (body.get("search"), SEARCH_FIELDS)
        if not isinstance(where, dict):
            continue
        for field in sorted(fields):
            if draw(st.integers(0, 7)) != 7:  # each field changed in one example of eight
                continue
            if field in BUDGET_FIELDS and level == "search":
                if budget_changed:
                    continue
                budget_changed = True
            action = draw(st.sampled_from(["drop", "any", "typed", "typed", "typed"]))
            if action == "drop":
                where.pop(field, None)
            else:
                where[field] = draw(_json_values() if action == "any" else fields[field])
        if draw(st.integers(0, 5)) == 5:  # an unknown field
            where[draw(_odd_text(12))] = draw(_json_values())
    return body


def _json_bytes(value, ascii_only: bool) -> bytes:
    """The body as a client would send it; lone surrogates go out as escapes or as invalid UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=x", "application/json; charset=latin-1", "audio/wav", "", "*/*;;="]


@st.composite
def raw_bodies(draw) -> tuple[bytes, str]:
    """Bytes that are not a JSON request: random, cut-off JSON, JSON with trailing junk, form data,
    very deep nesting; under any content type."""
    valid = _json_bytes({"model": "llasa", "input": "Fine.", "search": QUICK_SEARCH}, True)
    data = draw(st.one_of(
        st.binary(max_size=512), _odd_text(200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.integers(0, len(valid) - 1).map(lambda cut: valid[:cut]),
        st.binary(min_size=1, max_size=40).map(lambda junk: valid + junk),
        st.just(b"input=Hello&model=llasa"), st.integers(200, 20_000).map(lambda d: b"[" * d + b"]" * d),
        st.integers(1000, 20_000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d)))
    return data, draw(st.sampled_from(CONTENT_TYPES))


def _assert_error_shape(response, allowed: set[int]) -> dict | None:
    """A documented status; an error is OpenAI's error object with a message (never an echo of
    the whole body)."""
    assert response.status_code in allowed, (response.status_code, response.text[:500])
    if response.status_code < 400:
        return None
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message and len(message) < 2000, body
    return body["error"]


def _assert_speech_answer(response) -> None:
    _assert_error_shape(response, SPEECH_STATUSES)
    if response.status_code != 200:
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]
        assert events and all("type" in e for e in events)
        for event in events:  # a failure after the stream started is its last event, in the error shape
            if event["type"] == "error":
                assert event is events[-1] and event["error"]["message"], event
    else:
        assert response.content or response.headers["content-type"] == "audio/pcm"


@pytest.fixture(scope="module")
def http(service):
    import httpx2 as httpx
    from serve_support import TEST_API_KEY

    # Redirects followed, as the OpenAI SDK and browsers do: FastAPI sends a path with a trailing
    # slash to the one without (307), whose answer is the one that counts.
    with httpx.Client(base_url=service.http_url, headers={"Authorization": f"Bearer {TEST_API_KEY}"},
                      timeout=30, follow_redirects=True) as client:
        yield client


def _still_answers(service, http) -> None:
    """A valid request still gets its audio over HTTP, and gRPC's DescribeServer still answers."""
    response = http.post("/v1/audio/speech", json={"model": "llasa", "input": "Still here.",
                                                   "response_format": "wav", "search": QUICK_SEARCH})
    assert response.status_code == 200 and response.content[:4] == b"RIFF", response.text[:300]
    with TTSClient(service.address) as tts:
        assert tts.describe(timeout=30).api_version == "llasa.tts.v1"


def test_http_speech_answers_garbage_json_with_documented_errors(service, http):
    seen: dict[int, int] = {}

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(speech_bodies(), st.booleans())
    @example({"model": "llasa", "input": "Hi \udfff there.", "search": QUICK_SEARCH}, True)  # was a 500
    @example({"model": "llasa", "input": "Hi.", "search": {**QUICK_SEARCH, "verifiers": {"\ud800": 1.0}}}, True)
    def one(body, ascii_only):
        started = time.monotonic()
        response = http.post("/v1/audio/speech", content=_json_bytes(body, ascii_only),
                             headers={"content-type": "application/json"})
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        _assert_speech_answer(response)
        assert time.monotonic() - started < 25

    one()
    print("HTTP speech statuses:", seen)
    assert seen.get(400) and seen.get(200)
    # Half a UTF-16 pair fits in JSON but in no protobuf string: once a 500, now a 400 naming the field.
    broken = http.post("/v1/audio/speech", content=b'{"model": "llasa", "input": "Hi \\udfff there."}',
                       headers={"content-type": "application/json"})
    error = _assert_error_shape(broken, {400})
    assert error["param"] == "input" and "lone UTF-16 surrogate" in error["message"], error
    _still_answers(service, http)


def test_http_speech_answers_bodies_that_are_not_json(service, http):
    seen: dict[int, int] = {}

    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(raw_bodies())
    def one(raw):
        data, content_type = raw
        headers = {"content-type": content_type} if content_type else {}
        response = http.post("/v1/audio/speech", content=data, headers=headers)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        _assert_speech_answer(response)

    one()
    print("HTTP non-JSON statuses:", seen)
    assert seen.get(400)
    _still_answers(service, http)


def _sendable(text: str) -> str:
    """A form field goes out as UTF-8, which has no lone surrogates."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@st.composite
def voice_uploads(draw, real_voice: bytes) -> tuple[dict, dict]:
    """Form fields and files for POST /v1/audio/voices: random names (path traversal too),
    transcripts and audio (bytes that are not audio, truncated or mangled files, base64 text, a
    missing file, the audio as a plain field)."""
    fields = {"name": draw(_voice_names().map(_sendable)), "transcript": draw(st.one_of(
        st.just("This is my voice, speaking clearly."), _odd_text(60)).map(_sendable))}
    for field in draw(st.lists(st.sampled_from(["name", "transcript"]), max_size=1)):
        del fields[field]
    audio = draw(st.one_of(audio_bytes(), st.sampled_from(SEEDS).map(base64.b64encode),
                           st.just(b"bm90IGJhc2U2NCE=!!*&^"), st.binary(max_size=64), st.just(real_voice)))
    kind = draw(st.sampled_from(["file", "file", "file", "field", "missing"]))
    if kind == "field":
        fields["audio"] = audio.decode("latin-1")
        return fields, {}
    if kind == "missing":
        return fields, {}
    filename = draw(st.sampled_from(["voice.wav", "../../voice.wav", "", "v"]))
    return fields, {"audio": (filename, audio, draw(st.sampled_from(["audio/wav", "application/octet-stream",
                                                                     "text/plain"])))}


def test_http_voice_uploads_and_paths_answer_garbage_with_documented_errors(service, http, real_voice):
    seen: dict[str, int] = {}

    def count(kind: str, response) -> None:
        key = f"{kind} {response.status_code}"
        seen[key] = seen.get(key, 0) + 1

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(voice_uploads(real_voice))
    @example(({"name": "fuzz-http-voice", "transcript": "This is my voice, speaking clearly."},
              {"audio": ("voice.wav", real_voice, "audio/wav")}))
    def upload(form):
        fields, files = form
        response = http.post("/v1/audio/voices", data=fields, files=files or None)
        count("upload", response)
        _assert_error_shape(response, VOICE_STATUSES)
        if response.status_code == 201:  # garbage that is a real voice: stored, then removed
            assert http.delete(f"/v1/audio/voices/{quote(response.json()['id'], safe='')}").status_code == 200

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(_voice_names(), st.sampled_from(["GET", "DELETE", "PUT"]), st.booleans())
    def by_name(name, method, encoded):
        # raw: '/' and '.' as they are (../ traversal), else every byte percent-encoded
        path = "/v1/audio/voices/" + quote(name, safe="" if encoded else "/.", errors="surrogatepass")
        response = http.request(method, path)
        count(f"{method} voice", response)
        _assert_error_shape(response, VOICE_STATUSES - {201})
        speech = http.post("/v1/audio/speech", headers={"content-type": "application/json"}, content=_json_bytes(
            {"model": "llasa", "input": "Hi.", "voice": name, "search": QUICK_SEARCH}, True))
        count("speech voice", speech)
        _assert_error_shape(speech, {200, 400, 404})

    upload()
    by_name()
    # A voice upload sent as JSON (base64 audio that is not base64): a 400, not a crash.
    as_json = http.post("/v1/audio/voices", json={"name": "j", "transcript": "Hi.", "audio": "%%%not-base64"})
    count("json upload", as_json)
    assert _assert_error_shape(as_json, {400})["message"]
    print("HTTP voice statuses:", dict(sorted(seen.items())))
    assert seen.get("upload 400") and seen.get("upload 201") and any(key.endswith(" 404") for key in seen)
    names = [v["name"] for v in http.get("/v1/audio/voices").json()["data"]]
    assert not [n for n in names if not VOICE_NAME.fullmatch(n)], names  # nothing odd reached the store
    _still_answers(service, http)
