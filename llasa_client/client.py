"""A small typed client over the generated stub: build a request from keyword options, call the
service, get the proto response back. Failures are `TTSError`s carrying the gRPC status."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import grpc

from protos.llasa.tts.v1 import tts_pb2 as pb
from protos.llasa.tts.v1 import tts_pb2_grpc

DEFAULT_ADDRESS = "localhost:9000"
APPLICATION = "llasa"
API_KEY_ENV = "LLASA_API_KEY"  # the key the client sends when none is passed
STRATEGIES = {"best_of_n": pb.STRATEGY_BEST_OF_N, "beam": pb.STRATEGY_BEAM, "dvts": pb.STRATEGY_DVTS,
              "prm_orm": pb.STRATEGY_PRM_ORM}
AGGREGATIONS = {"last": pb.AGGREGATION_LAST, "min": pb.AGGREGATION_MIN, "mean": pb.AGGREGATION_MEAN,
                "prod": pb.AGGREGATION_PROD}
FORMATS = {"wav": pb.AUDIO_FORMAT_WAV, "flac": pb.AUDIO_FORMAT_FLAC, "f32": pb.AUDIO_FORMAT_PCM_F32LE}


class TTSError(RuntimeError):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class SynthesisOptions:
    """Everything but the text; None leaves a field to the server's default."""

    strategy: str | None = None
    n: int | None = None
    beam_width: int | None = None
    step_tokens: int | None = None
    prm_steps: int | None = None
    aggregation: str | None = None
    process_verifiers: dict[str, float] = field(default_factory=dict)
    outcome_verifiers: dict[str, float] = field(default_factory=dict)
    max_speech_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    reference_audio: bytes | str | Path | None = None  # file bytes or a path
    reference_text: str | None = None
    voice_id: str | None = None  # a saved voice (create_voice) instead of reference_audio
    language: str = "en"
    output_format: str = "wav"
    timeout_seconds: float | None = None
    allow_partial_verifiers: bool = False  # go on with the verifiers that answer if one stays down
    return_scores: bool = False  # score even at n = 1 (otherwise n = 1 runs no verifier)
    word_timestamps: bool = False  # each word's start and end in the chosen audio (response.words)
    judge: bool = False  # the server's independent judge scores the chosen audio (response.judge)
    text_has_tags: bool = False  # the text marks non-speech tags ([laughs]) the ASR should not expect


def build_request(text: str, options: SynthesisOptions = SynthesisOptions()) -> pb.SynthesizeRequest:
    o = options
    unset = lambda **kw: {k: v for k, v in kw.items() if v is not None}  # noqa: E731
    request = pb.SynthesizeRequest(
        text=text,
        language=o.language,
        search=pb.SearchOptions(
            strategy=STRATEGIES[o.strategy] if o.strategy else pb.STRATEGY_UNSPECIFIED,
            aggregation=AGGREGATIONS[o.aggregation] if o.aggregation else pb.AGGREGATION_UNSPECIFIED,
            process_verifiers=o.process_verifiers, outcome_verifiers=o.outcome_verifiers,
            allow_partial_verifiers=o.allow_partial_verifiers, return_scores=o.return_scores,
            **unset(n=o.n, beam_width=o.beam_width, step_tokens=o.step_tokens, prm_steps=o.prm_steps,
                    max_speech_tokens=o.max_speech_tokens),
        ),
        sampling=pb.SamplingOptions(**unset(temperature=o.temperature, top_p=o.top_p, top_k=o.top_k,
                                            repetition_penalty=o.repetition_penalty, seed=o.seed)),
        output_format=FORMATS[o.output_format],
        word_timestamps=o.word_timestamps, judge=o.judge, text_has_tags=o.text_has_tags,
        **unset(timeout_seconds=o.timeout_seconds, voice_id=o.voice_id),
    )
    if o.reference_audio is not None:
        audio = o.reference_audio if isinstance(o.reference_audio, bytes) else Path(o.reference_audio).read_bytes()
        request.reference.CopyFrom(pb.ReferenceVoice(audio=audio, transcript=o.reference_text or ""))
    return request


class TTSClient:
    """`with TTSClient("localhost:9000") as tts: response = tts.synthesize("Hello")`.

    `api_key` (default: the LLASA_API_KEY environment variable) is sent as `x-api-key` metadata
    on every call. `tls=True` speaks TLS (to a TLS-terminating sidecar in front of Serve's
    proxy), verifying the server with the system roots or with `root_certificates` (PEM bytes
    or a path).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, application: str = APPLICATION, api_key: str | None = None,
                 tls: bool = False, root_certificates: bytes | str | Path | None = None):
        options = [("grpc.max_receive_message_length", 256 << 20)]
        if tls or root_certificates is not None:
            if root_certificates is not None and not isinstance(root_certificates, bytes):
                root_certificates = Path(root_certificates).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.stub = tts_pb2_grpc.TTSServiceStub(self.channel)
        # Ray Serve picks the application by this metadata when it serves more than one.
        metadata = [("application", application)]
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if api_key:
            metadata.append(("x-api-key", api_key))
        self.metadata = tuple(metadata)

    def __enter__(self) -> "TTSClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def describe(self, timeout: float | None = 30) -> pb.ServerDescription:
        return self._call(self.stub.DescribeServer, pb.DescribeServerRequest(), timeout)

    def create_voice(self, name: str, audio: bytes | str | Path, transcript: str,
                     timeout: float | None = 120) -> pb.SavedVoice:
        """Save a reference voice (file bytes or a path) once; later requests name it by voice_id."""
        data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
        return self._call(self.stub.CreateVoice, pb.CreateVoiceRequest(name=name, audio=data, transcript=transcript),
                          timeout)

    def list_voices(self, timeout: float | None = 30) -> list[pb.SavedVoice]:
        return list(self._call(self.stub.ListVoices, pb.ListVoicesRequest(), timeout).voices)

    def get_voice(self, voice_id: str, timeout: float | None = 30) -> pb.SavedVoice:
        return self._call(self.stub.GetVoice, pb.GetVoiceRequest(voice_id=voice_id), timeout)

    def delete_voice(self, voice_id: str, timeout: float | None = 30) -> None:
        self._call(self.stub.DeleteVoice, pb.DeleteVoiceRequest(voice_id=voice_id), timeout)

    def synthesize(self, text: str, options: SynthesisOptions = SynthesisOptions(),
                   timeout: float | None = None) -> pb.SynthesizeResponse:
        return self._call(self.stub.Synthesize, build_request(text, options), timeout)

    def synthesize_stream(self, text: str, options: SynthesisOptions = SynthesisOptions(),
                          timeout: float | None = None) -> Iterator[pb.SynthesizeEvent]:
        """Progress and audio events (AudioChunk: mono float32 that will not change, in order), then
        one event holding the result, whose audio is the chunks joined."""
        try:
            yield from self.stub.SynthesizeStream(build_request(text, options), metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as err:
            raise TTSError(err.code(), err.details()) from err

    def synthesize_with_progress(self, text: str, options: SynthesisOptions = SynthesisOptions(),
                                 on_progress: Callable[[pb.SearchProgress], None] | None = None,
                                 timeout: float | None = None,
                                 on_audio: Callable[[pb.AudioChunk], None] | None = None) -> pb.SynthesizeResponse:
        """The result; `on_progress` and `on_audio` see the stream's events as they arrive (write or
        play each AudioChunk's `pcm_f32le` samples at once)."""
        for event in self.synthesize_stream(text, options, timeout):
            kind = event.WhichOneof("event")
            if kind == "progress" and on_progress:
                on_progress(event.progress)
            elif kind == "audio" and on_audio:
                on_audio(event.audio)
            elif kind == "result":
                return event.result
        raise TTSError(grpc.StatusCode.UNKNOWN, "the stream ended without a result")

    def _call(self, method, request, timeout):
        try:
            return method(request, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as err:
            raise TTSError(err.code(), err.details()) from err
