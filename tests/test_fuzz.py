"""Fuzzing (hypothesis): the audio decoders in process, and the gRPC API of the running service.

Garbage never crashes anything, never hangs, and only ever gets a documented answer: the audio
readers raise their one error type; the service answers OK or a documented status (never
INTERNAL or UNKNOWN) and still answers DescribeServer afterwards.
"""

from __future__ import annotations

import io
import time

import grpc
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.config import Limits
from deployments.convert import decode_reference
from deployments.orchestrator import RequestError
from llasa_client import TTSClient
from llasa_core.audio import AudioError, read_audio
from protos.llasa.tts.v1 import tts_pb2 as pb
from protos.llasa.tts.v1 import tts_pb2_grpc

SERVICE_STATUSES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED}


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


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
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


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
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
    return request


@st.composite
def near_valid_requests(draw) -> pb.SynthesizeRequest:
    """A small valid request with up to two fields swapped for the garbage of `requests()`, so
    the fuzz reaches the search, the stages and the response encoders too."""
    request = pb.SynthesizeRequest(text="Fuzzed but fine.", search=pb.SearchOptions(
        strategy=pb.STRATEGY_BEAM, n=2, beam_width=2, step_tokens=10, max_speech_tokens=20,
        process_verifiers={"speaker": 1.0}), sampling=pb.SamplingOptions(seed=1), timeout_seconds=10)
    garbage = draw(requests())
    fields = ["text", "language", "output_format", "timeout_seconds", "reference", "search.strategy",
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
