"""The HTTP side of the ingress: OpenAI's `POST /v1/audio/speech`, saved voices and the web page.

Ray Serve sends an application's HTTP and gRPC requests to its one ingress deployment, so this is
the gRPC `TTSIngress` itself (same name, same gRPC methods, same orchestrator handle) with a
FastAPI app mounted on it. HTTP requests are validated by the same rules as gRPC ones: they are
turned into a `SynthesizeRequest` and go through `convert.parse_request`. Every error is OpenAI's
error object, {"error": {"message", "type", "param", "code"}}, with the HTTP status that fits.

No `from __future__ import annotations`: FastAPI reads the route methods' annotations, and Serve's
class-based view re-signs them, which leaves string annotations unresolved.
"""

import asyncio
import base64
import dataclasses
import json
import time
from contextlib import aclosing
from pathlib import Path
from typing import AsyncIterator

import grpc
import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from llasa_core.validation import InputError, check_reference, check_text
from protos.llasa.tts.v1 import tts_pb2 as pb

from . import convert, speech_formats
from .config import PROJECT_ROOT, LlasaAppArgs
from .ingress import TTSIngress, _cancel, _status_of, _statuses
from .metrics import SearchMetrics
from .orchestrator import AudioChunk, RequestError, SynthesisJob, SynthesisOutcome, in_voice
from .status import StatusError
from .voices import NO_VOICE, Voice, VoiceExists, VoiceNameError, VoiceNotFound, VoiceStore, check_name, new_voice

PAGE = Path(__file__).with_name("static") / "index.html"
MAX_SPEECH_BODY_BYTES = 64 << 10  # a speech request is JSON around at most max_text_chars of text
MULTIPART_SLACK_BYTES = 64 << 10  # form fields and boundaries around an uploaded voice file

HTTP_OF_GRPC = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
                grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
                grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
                grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
               405: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param,
                      "code": code}}


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error_body(error.status, error.message, error.param, error.code), status_code=error.status)


def api_error_of(error: BaseException, timeout: float) -> APIError | None:
    """The gRPC ingress's judgement of a failure (ingress._status_of), as an HTTP status."""
    code, message = _status_of(error, timeout)
    if code is None:
        return None
    return APIError(HTTP_OF_GRPC.get(code, 500), message, code=code.name.lower())


app = FastAPI(title="Llasa TTS", summary="OpenAI-compatible speech API with inference-time search")


@app.exception_handler(APIError)
async def _api_error(request: Request, error: APIError) -> JSONResponse:
    return _error_response(error)


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 is OpenAI's 400: malformed JSON, a wrong type, a missing or unknown field."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body",)]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        message = "the request body is not valid JSON: send a JSON object such as {\"input\": \"Hello\", ...}"
    else:
        message = f"{param or 'body'}: {first.get('msg', 'invalid')}"
    return _error_response(APIError(400, message, param=param, code=first.get("type")))


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    return _error_response(APIError(error.status_code, str(error.detail)))


@app.exception_handler(Exception)
async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    return _error_response(APIError(500, f"internal error ({type(error).__name__}); the server log has the details"))


@app.middleware("http")
async def _body_limit(request: Request, call_next):
    """Refuse an oversized body from its Content-Length, before reading it (413)."""
    if request.url.path == "/v1/audio/speech":
        limit = MAX_SPEECH_BODY_BYTES
    else:  # a voice upload
        limit = serve.get_replica_context().servable_object.args.limits.max_reference_bytes + MULTIPART_SLACK_BYTES
    length = request.headers.get("content-length", "")
    if request.method == "POST" and limit is not None and length.isdigit() and int(length) > limit:
        return _error_response(APIError(413, f"the request body is {int(length)} bytes, over this server's limit of "
                                             f"{limit} bytes for {request.url.path}: send less (a shorter voice clip, "
                                             "or FLAC)", code="request_too_large"))
    return await call_next(request)


class SearchExtension(BaseModel):
    """Llasa's search settings; OpenAI clients send them as `extra_body={"search": {...}}`."""

    model_config = ConfigDict(extra="forbid")
    strategy: str | None = Field(None, description="best_of_n, beam, dvts or prm_orm")
    n: int | None = Field(None, ge=1, le=1 << 31)
    beam_width: int | None = Field(None, ge=1, le=1 << 31)
    step_tokens: int | None = Field(None, ge=1, le=1 << 31)
    max_speech_tokens: int | None = Field(None, ge=1, le=1 << 31)
    verifiers: dict[str, float] | None = Field(None, description="outcome verifiers: name -> weight")
    process_verifiers: dict[str, float] | None = None
    seed: int | None = Field(None, ge=0, lt=1 << 64)
    temperature: float | None = None
    timeout_seconds: float | None = None
    return_scores: bool = False
    return_candidate_audio: bool = Field(False, description="SSE result: each candidate's audio (base64 WAV)")
    word_timestamps: bool = Field(False, description="each word's start and end (SSE only: llasa.search.result)")
    judge: bool = Field(False, description="the server's judge scores the chosen audio (SSE only)")


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., description="any name; this server serves one model")
    input: str
    voice: str | dict = Field(NO_VOICE, description=f"a saved voice's name, or {NO_VOICE!r} (the server's default "
                                                    "voice, lm.default_voice; no reference if none is configured)")
    response_format: str = "mp3"
    speed: float = 1.0
    stream_format: str = "audio"
    instructions: str | None = None
    language: str = "en"
    search: SearchExtension | None = None


def _voice_name(voice: str | dict) -> str:
    name = voice.get("id") if isinstance(voice, dict) else voice
    if not isinstance(name, str) or not name:
        raise APIError(400, "voice must be a saved voice's name (or {\"id\": name})", param="voice")
    return name


def lone_surrogate_at(value, path: str = "") -> str | None:
    """Where a string holds half a UTF-16 pair (JSON's "\\ud83d" escape without its partner): no
    text at all, and no protobuf string can hold it. None when every string is whole."""
    if isinstance(value, str):
        return None if value.isascii() or not any("\ud800" <= ch <= "\udfff" for ch in value) else path or "body"
    if isinstance(value, dict):
        for key, item in value.items():
            where = lone_surrogate_at(key, path or "body") or lone_surrogate_at(item, f"{path}.{key}".lstrip("."))
            if where is not None:
                return where.encode("utf-8", "backslashreplace").decode()
    return None


def synthesize_request(body: SpeechRequest) -> pb.SynthesizeRequest:
    """The OpenAI request as the gRPC one, so that one set of rules validates both."""
    broken = lone_surrogate_at(body.model_dump())
    if broken is not None:
        raise APIError(400, f"{broken} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), "
                            "which is not text: send valid Unicode", param=broken)
    if body.response_format not in speech_formats.MEDIA_TYPES:
        raise APIError(400, f"response_format {body.response_format[:40]!r} is not supported: use one of "
                            f"{list(speech_formats.MEDIA_TYPES)}", param="response_format")
    if body.speed != 1.0:
        raise APIError(400, f"speed = {body.speed:g} is not supported: this server speaks at speed 1.0 only "
                            "(omit speed or send 1.0)", param="speed")
    if body.stream_format not in ("audio", "sse"):
        raise APIError(400, f"stream_format {body.stream_format[:40]!r} is not supported: use 'audio' or 'sse'",
                       param="stream_format")
    if body.instructions:
        raise APIError(400, "instructions are not supported: Llasa takes its style from the voice; omit them",
                       param="instructions")
    request = pb.SynthesizeRequest(text=body.input, language=body.language)
    s = body.search or SearchExtension()
    if s.strategy is not None:
        if s.strategy not in convert.STRATEGY_TO_PROTO:
            raise APIError(400, f"unknown strategy {s.strategy[:40]!r}; use one of "
                                f"{sorted(convert.STRATEGY_TO_PROTO)}", param="search.strategy")
        request.search.strategy = convert.STRATEGY_TO_PROTO[s.strategy]
    for field in ("n", "beam_width", "step_tokens", "max_speech_tokens"):
        if getattr(s, field) is not None:
            setattr(request.search, field, getattr(s, field))
    request.search.outcome_verifiers.update(s.verifiers or {})
    request.search.process_verifiers.update(s.process_verifiers or {})
    request.search.return_scores = s.return_scores
    request.search.return_candidate_audio = s.return_candidate_audio
    if (s.word_timestamps or s.judge) and body.stream_format != "sse":
        asked = "search.word_timestamps" if s.word_timestamps else "search.judge"
        raise APIError(400, f"{asked} comes back in the llasa.search.result event only: send stream_format='sse' "
                            "(a plain audio response has nowhere to put it)", param=asked)
    request.word_timestamps, request.judge = s.word_timestamps, s.judge
    if s.seed is not None:
        request.sampling.seed = s.seed
    if s.temperature is not None:
        request.sampling.temperature = s.temperature
    if s.timeout_seconds is not None:
        request.timeout_seconds = s.timeout_seconds
    return request


def _candidate(c) -> dict:
    return MessageToDict(convert.candidate_proto(c), preserving_proto_field_name=True)


def _candidate_audio(c) -> dict:
    """A candidate's audio as base64 WAV, when the request kept it (return_candidate_audio)."""
    if c.audio is None:
        return {}
    return {"audio_wav": base64.b64encode(speech_formats.encode(c.audio, "wav")).decode()}


def search_summary(outcome: SynthesisOutcome, candidate_audio: bool = False) -> dict:
    """What the search did, for the page and for clients that ask for SSE; with `candidate_audio`
    each candidate carries its audio as base64 WAV (`audio_wav`)."""
    result, account = outcome.result, outcome.result.account
    return {
        "strategy": result.strategy, "steps": result.steps, "prompt_tokens": outcome.prompt_tokens,
        "chosen": _candidate(result.chosen),
        "candidates": [_candidate(c) | (_candidate_audio(c) if candidate_audio else {}) for c in result.candidates],
        "lm_generated_tokens": account.lm_generated_tokens, "search_seconds": outcome.search_seconds,
        "verifiers_used": list(result.verifiers_used), "verifiers_failed": dict(result.verifiers_failed),
    }


def saved_voice_proto(voice: Voice) -> pb.SavedVoice:
    summary = voice.summary()
    return pb.SavedVoice(id=voice.name, transcript=voice.transcript, seconds=summary["seconds"],
                         codes=summary["codes"], created_at=voice.created_at)


def _asked_extras(job: SynthesisJob, outcome: SynthesisOutcome) -> dict:
    """Word timestamps and the judge's verdict, when the request asked for them (gRPC's words and judge)."""
    extras = {}
    if job.word_timestamps:
        extras["words"] = [MessageToDict(w, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
                           for w in convert.word_protos(outcome)]
    if job.judge:
        judge = convert.judge_proto(outcome)
        extras["judge"] = None if judge is None else MessageToDict(judge, preserving_proto_field_name=True)
    return extras


def _sse(event: dict) -> bytes:
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def _chosen_audio(outcome: SynthesisOutcome) -> np.ndarray:
    audio = outcome.result.chosen.audio
    return audio if audio is not None else np.zeros(0, np.float32)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


# Everything the class uses is defined above it: Serve pickles the class when it is decorated.
@serve.deployment(name="TTSIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
@serve.ingress(app)
class HTTPIngress(TTSIngress.func_or_class):
    def __init__(self, orchestrator: DeploymentHandle, args: LlasaAppArgs, codec: DeploymentHandle):
        super().__init__(orchestrator, args)
        self.codec = codec
        store = args.voice_store
        self.voices = VoiceStore(store if "://" in store or Path(store).is_absolute() else str(PROJECT_ROOT / store))
        self.metrics = SearchMetrics()

    # gRPC: the inherited methods, counted in the search metrics ----------------------------------

    async def Synthesize(self, request: pb.SynthesizeRequest, grpc_context: RayServegRPCContext
                         ) -> pb.SynthesizeResponse:
        try:
            response = await super().Synthesize(request, grpc_context)
        except StatusError:
            self._grpc_failed(grpc_context)
            raise
        self.metrics.record_response(response, self._n(request))
        return response

    async def SynthesizeStream(self, request: pb.SynthesizeRequest, grpc_context: RayServegRPCContext
                               ) -> AsyncIterator[pb.SynthesizeEvent]:
        try:
            async with aclosing(super().SynthesizeStream(request, grpc_context)) as events:
                async for event in events:
                    if event.HasField("result"):
                        self.metrics.record_response(event.result, self._n(request))
                    yield event
        except StatusError:
            self._grpc_failed(grpc_context)
            raise

    def _n(self, request: pb.SynthesizeRequest) -> int:
        return request.search.n if request.search.HasField("n") else self.args.defaults.n

    def _grpc_failed(self, grpc_context: RayServegRPCContext) -> None:
        self.metrics.failed(HTTP_OF_GRPC.get(grpc_context.code(), 500), "grpc")

    async def _job_of(self, request: pb.SynthesizeRequest) -> SynthesisJob:
        job = convert.parse_request(request, self.args)
        return await self._with_voice(job, request.voice_id) if request.voice_id else job

    async def CreateVoice(self, request: pb.CreateVoiceRequest, grpc_context: RayServegRPCContext) -> pb.SavedVoice:
        with _statuses(grpc_context, self.args.resilience.stage_timeout_s):
            self._authenticate(grpc_context)
            return saved_voice_proto(await self._create_voice(request.name, request.transcript, request.audio))

    async def ListVoices(self, request: pb.ListVoicesRequest, grpc_context: RayServegRPCContext
                         ) -> pb.ListVoicesResponse:
        with _statuses(grpc_context, 0):
            self._authenticate(grpc_context)
            return pb.ListVoicesResponse(voices=[saved_voice_proto(v) for v in await self._saved_voices()])

    async def GetVoice(self, request: pb.GetVoiceRequest, grpc_context: RayServegRPCContext) -> pb.SavedVoice:
        with _statuses(grpc_context, 0):
            self._authenticate(grpc_context)
            return saved_voice_proto(await asyncio.to_thread(self.voices.load, request.voice_id))

    async def DeleteVoice(self, request: pb.DeleteVoiceRequest, grpc_context: RayServegRPCContext
                          ) -> pb.DeleteVoiceResponse:
        with _statuses(grpc_context, 0):
            self._authenticate(grpc_context)
            await asyncio.to_thread(self.voices.delete, request.voice_id)
            return pb.DeleteVoiceResponse(voice_id=request.voice_id, deleted=True)

    # Saved voices, shared by both APIs: failures are the voice store's and RequestErrors ----------

    async def _with_voice(self, job: SynthesisJob, name: str) -> SynthesisJob:
        """The job cloning a saved voice: its audio, transcript and (for this codec) its stored codes."""
        voice = await asyncio.to_thread(self.voices.load, name)  # VoiceNotFound, VoiceNameError
        return in_voice(job, voice, self.args.codec.model)

    async def _create_voice(self, name: str, transcript: str, data: bytes) -> Voice:
        """Validate a voice as a reference is, encode it once with the codec, store it (VoiceExists if taken)."""
        limits = self.args.limits
        try:
            voice_name = check_name(name.strip())
            transcript = transcript.strip()
            if not transcript:
                raise RequestError("transcript is empty: send what the voice says in the audio")
            if len(transcript) > limits.max_text_chars:
                raise RequestError(f"transcript has {len(transcript)} characters, over this server's limit of "
                                   f"{limits.max_text_chars}")
            check_text(transcript, "transcript")
            reference = await asyncio.to_thread(convert.decode_reference, data, limits)
            await asyncio.to_thread(check_reference, reference, "audio")
        except (RequestError, InputError, VoiceNameError) as err:
            raise RequestError(str(err).replace("reference.audio", "audio")) from None
        async with asyncio.timeout(self.args.resilience.stage_timeout_s):
            codes = await self.codec.encode.remote(reference)
        voice = new_voice(voice_name, transcript, reference, codes, self.args.codec.model)
        await asyncio.to_thread(self.voices.save, voice)
        return voice

    async def _saved_voices(self) -> list[Voice]:
        voices = []
        for name in await asyncio.to_thread(self.voices.names):
            try:
                voices.append(await asyncio.to_thread(self.voices.load, name))
            except VoiceNotFound:  # deleted meanwhile
                continue
        return voices

    # HTTP ---------------------------------------------------------------------------------------

    def _authenticate_http(self, request: Request) -> None:
        if self.keys is not None and not self.keys.allows(request.headers.items()):
            raise APIError(401, self._unauthenticated_message(), code="invalid_api_key")

    @staticmethod
    def _unauthenticated_message() -> str:
        return ("this server needs an API key: send `Authorization: Bearer <key>` (the OpenAI SDK's api_key) or "
                "`x-api-key: <key>`")

    async def _job(self, body: SpeechRequest) -> tuple[SynthesisJob, pb.SynthesizeRequest]:
        request = synthesize_request(body)
        try:
            job = convert.parse_request(request, self.args)
        except RequestError as err:
            raise APIError(400, str(err)) from None
        name = _voice_name(body.voice)
        if name != NO_VOICE:
            try:
                job = await self._with_voice(job, name)
            except (VoiceNotFound, VoiceNameError) as err:
                raise APIError(404, str(err), param="voice", code="voice_not_found") from None
        return job, request

    @app.post("/v1/audio/speech")
    async def speech(self, body: SpeechRequest, request: Request) -> Response:
        started = time.perf_counter()
        self._authenticate_http(request)
        job, proto = await self._job(body)
        timeout = convert.timeout_of(proto, self.args)
        if body.stream_format == "sse" or body.response_format == "pcm":  # pcm streams as the search fixes it
            if body.stream_format == "sse":
                events, media_type = self._events(job, body, started, timeout), "text/event-stream"
            else:
                events, media_type = self._pcm(job, started, timeout), speech_formats.MEDIA_TYPES["pcm"]
            try:
                first = await anext(events)  # failures before the first bytes still get their own status
            except BaseException:
                await events.aclose()
                raise
            return StreamingResponse(_prepend(first, events), media_type=media_type,
                                     headers={"Cache-Control": "no-cache"})
        response = self.orchestrator.synthesize.remote(job)
        outcome = await self._await(response, timeout)
        audio = await asyncio.to_thread(speech_formats.encode, _chosen_audio(outcome), body.response_format)
        self.metrics.record(outcome, job.config.n, time.perf_counter() - started, "http")
        chosen = outcome.result.chosen
        headers = {"X-Llasa-Strategy": outcome.result.strategy, "X-Llasa-Candidates": str(len(outcome.result.candidates)),
                   "X-Llasa-Search-Seconds": f"{outcome.search_seconds:.3f}",
                   "X-Llasa-Reference-Encode-Seconds": f"{outcome.reference_encode_seconds:.6f}"}
        if chosen.final_score is not None:
            headers["X-Llasa-Chosen-Score"] = f"{chosen.final_score:.4f}"
        return Response(audio, media_type=speech_formats.MEDIA_TYPES[body.response_format], headers=headers)

    async def _await(self, response, timeout: float) -> SynthesisOutcome:
        try:
            async with asyncio.timeout(timeout):
                return await response
        except BaseException as err:
            _cancel(response)  # the search stops: a timed-out await alone would leave it running
            api = self._api_error(err, timeout)
            if api is None:
                raise
            raise api from err

    def _api_error(self, err: BaseException, timeout: float) -> APIError | None:
        """The HTTP error a failure answers with (counted), or None for one nobody judged."""
        api = err if isinstance(err, APIError) else api_error_of(err, timeout)
        if api is not None:
            self.metrics.failed(api.status, "http")
        return api

    async def _items(self, job: SynthesisJob, timeout: float, audio: bool) -> AsyncIterator:
        """The orchestrator's stream (StepEvents, AudioChunks with `audio`, then the outcome); its
        failures as APIErrors."""
        stream = self.orchestrator.options(stream=True).synthesize_stream.remote(job, audio=audio)
        try:
            async with asyncio.timeout(timeout):
                async for item in stream:
                    yield item
        except BaseException as err:
            _cancel(stream)  # the search stops
            api = self._api_error(err, timeout)
            if api is None:
                raise
            raise api from err

    async def _pcm(self, job: SynthesisJob, started: float, timeout: float) -> AsyncIterator[bytes]:
        """OpenAI's pcm, each piece as soon as the search has fixed its audio."""
        pcm, first_audio = speech_formats.PCMStream(), None
        async with aclosing(self._items(job, timeout, audio=True)) as items:
            async for item in items:
                if isinstance(item, AudioChunk):
                    data = pcm.push(item.samples)
                elif isinstance(item, SynthesisOutcome):
                    data = pcm.push(_chosen_audio(item)[pcm.pushed:]) + pcm.finish()  # what no chunk carried
                    first_audio = first_audio or time.perf_counter()
                    self.metrics.record(item, job.config.n, first_audio - started, "http")
                else:
                    continue
                if data:
                    first_audio = first_audio or time.perf_counter()
                    yield data

    async def _events(self, job: SynthesisJob, body: SpeechRequest, started: float,
                      timeout: float) -> AsyncIterator[bytes]:
        """OpenAI's speech SSE (`speech.audio.delta` with base64 audio, then `speech.audio.done`),
        with Llasa's own `llasa.search.progress` per step and `llasa.search.result` before the last
        audio. pcm deltas come as the search fixes the audio; other formats in one delta at the end."""
        pcm = speech_formats.PCMStream() if body.response_format == "pcm" else None
        first_audio, sent_any = None, False
        try:
            async with aclosing(self._items(job, timeout, audio=pcm is not None)) as items:
                async for item in items:
                    if isinstance(item, SynthesisOutcome):
                        if pcm is None:
                            audio = await asyncio.to_thread(speech_formats.encode, _chosen_audio(item),
                                                            body.response_format)
                        else:
                            audio = pcm.push(_chosen_audio(item)[pcm.pushed:]) + pcm.finish()
                        first_audio = first_audio or time.perf_counter()
                        self.metrics.record(item, job.config.n, first_audio - started, "http")
                        summary = search_summary(item, job.config.return_candidate_audio)
                        yield _sse({"type": "llasa.search.result", **summary, **_asked_extras(job, item)})
                        if audio:
                            yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode()})
                        tokens = item.result.account.lm_generated_tokens
                        yield _sse({"type": "speech.audio.done",
                                    "usage": {"input_tokens": item.prompt_tokens, "output_tokens": tokens,
                                              "total_tokens": item.prompt_tokens + tokens}})
                    elif isinstance(item, AudioChunk):
                        audio = pcm.push(item.samples)
                        if audio:
                            first_audio = first_audio or time.perf_counter()
                            yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode()})
                    else:
                        yield _sse({"type": "llasa.search.progress", **dataclasses.asdict(item),
                                    "elapsed_seconds": time.perf_counter() - started})
                    sent_any = True
        except APIError as api:
            if not sent_any:
                raise
            # The status line is gone: the error travels as the stream's last event.
            yield _sse({"type": "error", **error_body(api.status, api.message, api.param, api.code)})

    # Saved voices -------------------------------------------------------------------------------

    @app.post("/v1/audio/voices", status_code=201)
    async def create_voice(self, request: Request, audio: UploadFile = File(...), transcript: str = Form(...),
                           name: str = Form(...)) -> dict:
        self._authenticate_http(request)
        limits = self.args.limits
        data = await audio.read()
        if len(data) > limits.max_reference_bytes:
            raise APIError(413, f"audio is {len(data)} bytes, over this server's limit max_reference_bytes = "
                                f"{limits.max_reference_bytes}: send a shorter clip or FLAC", param="audio")
        try:
            voice = await self._create_voice(name, transcript, data)
        except RequestError as err:
            raise APIError(400, str(err)) from None
        except VoiceExists as err:
            raise APIError(409, str(err), param="name", code="voice_exists") from None
        except BaseException as err:  # the codec's failure
            api = self._api_error(err, self.args.resilience.stage_timeout_s)
            if api is None:
                raise
            raise api from err
        return voice.summary()

    @app.get("/v1/audio/voices")
    async def list_voices(self, request: Request) -> dict:
        self._authenticate_http(request)
        return {"object": "list", "data": [voice.summary() for voice in await self._saved_voices()]}

    @app.get("/v1/audio/voices/{name}")
    async def get_voice(self, name: str, request: Request) -> dict:
        self._authenticate_http(request)
        return (await self._load(name)).summary()

    @app.delete("/v1/audio/voices/{name}")
    async def delete_voice(self, name: str, request: Request) -> dict:
        self._authenticate_http(request)
        try:
            await asyncio.to_thread(self.voices.delete, name)
        except (VoiceNotFound, VoiceNameError) as err:
            raise APIError(404, str(err), param="name", code="voice_not_found") from None
        return {"id": name, "object": "voice", "deleted": True}

    async def _load(self, name: str):
        try:
            return await asyncio.to_thread(self.voices.load, name)
        except (VoiceNotFound, VoiceNameError) as err:
            raise APIError(404, str(err), param="name", code="voice_not_found") from None

    # The page -------------------------------------------------------------------------------------

    @app.get("/v1/server")
    async def server(self, request: Request) -> dict:
        """What the page needs to offer: strategies, verifiers, limits and defaults (DescribeServer)."""
        self._authenticate_http(request)
        return MessageToDict(self.description, preserving_proto_field_name=True)

    @app.get("/", response_class=HTMLResponse)
    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

