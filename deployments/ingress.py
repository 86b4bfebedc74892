"""The gRPC ingress: Ray Serve's gRPC proxy calls these methods by RPC name.

It validates requests, hands plain jobs to the orchestrator, and turns every failure into a gRPC
status whose message says what to fix. A failed request never takes a replica down.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import grpc
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle

from llasa_core.search import SearchConfigError, VerifiersUnavailableError
from llasa_core.stages import KVBudgetExhausted, SessionError
from protos.llasa.tts.v1 import tts_pb2 as pb

from . import convert
from .auth import UNAUTHENTICATED_MESSAGE, KeyChecker
from .config import LlasaAppArgs
from .orchestrator import AudioChunk, RequestError, StageUnavailableError, SynthesisJob, SynthesisOutcome
from .status import StatusError
from .voices import VoiceExists, VoiceNameError, VoiceNotFound

UNAVAILABLE_ERRORS = (DeploymentUnavailableError, ReplicaUnavailableError, RayActorError, ActorDiedError,
                      ActorUnavailableError, SessionError, StageUnavailableError, VerifiersUnavailableError)


class Unauthenticated(Exception):
    """No valid API key in the request's metadata (the message never quotes what was sent)."""


@serve.deployment(name="TTSIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class TTSIngress:
    def __init__(self, orchestrator: DeploymentHandle, args: LlasaAppArgs):
        self.orchestrator = orchestrator
        self.args = args
        self.description = convert.describe(args)
        self.keys = KeyChecker.from_args(args.auth)  # None: no auth configured

    def _authenticate(self, grpc_context: RayServegRPCContext) -> None:
        if self.keys is not None and not self.keys.allows(grpc_context.invocation_metadata()):
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE)

    async def Synthesize(self, request: pb.SynthesizeRequest, grpc_context: RayServegRPCContext) -> pb.SynthesizeResponse:
        started = time.perf_counter()
        with _statuses(grpc_context, convert.timeout_of(request, self.args)):
            self._authenticate(grpc_context)
            job = await self._job_of(request)
            validated = time.perf_counter()
            response = self.orchestrator.synthesize.remote(job)
            try:
                async with asyncio.timeout(convert.timeout_of(request, self.args)):
                    outcome = await response
            except BaseException:
                _cancel(response)  # the search stops: a timed-out await alone would leave it running
                raise
            return _finish(outcome, request.output_format, started, validated)

    async def SynthesizeStream(
        self, request: pb.SynthesizeRequest, grpc_context: RayServegRPCContext
    ) -> AsyncIterator[pb.SynthesizeEvent]:
        started = time.perf_counter()
        with _statuses(grpc_context, convert.timeout_of(request, self.args)):
            self._authenticate(grpc_context)
            job = await self._job_of(request)
            validated = time.perf_counter()
            stream = self.orchestrator.options(stream=True).synthesize_stream.remote(job, audio=True)
            first_audio = None
            try:
                async with asyncio.timeout(convert.timeout_of(request, self.args)):
                    async for item in stream:
                        if isinstance(item, SynthesisOutcome):
                            response = _finish(item, request.output_format, started, validated)
                            if first_audio is not None:
                                response.timings.first_audio_seconds = first_audio
                            yield pb.SynthesizeEvent(result=response)
                        elif isinstance(item, AudioChunk):
                            elapsed = time.perf_counter() - started
                            first_audio = elapsed if first_audio is None else first_audio
                            yield pb.SynthesizeEvent(audio=convert.audio_chunk_proto(item, elapsed))
                        else:
                            yield pb.SynthesizeEvent(progress=convert.progress_proto(item,
                                                                                     time.perf_counter() - started))
            except BaseException:
                _cancel(stream)
                raise

    async def _job_of(self, request: pb.SynthesizeRequest) -> SynthesisJob:
        """The validated job; HTTPIngress, which holds the voice store, adds the voice named by voice_id."""
        return convert.parse_request(request, self.args)

    async def DescribeServer(self, request: pb.DescribeServerRequest,
                             grpc_context: RayServegRPCContext) -> pb.ServerDescription:
        with _statuses(grpc_context, 0):
            self._authenticate(grpc_context)
            return self.description


def _cancel(response) -> None:
    """Cancel a handle call; its own failure (e.g. the queue refused it) must not hide the error
    being handled."""
    try:
        response.cancel()
    except Exception:  # noqa: BLE001
        pass


def _finish(outcome: SynthesisOutcome, fmt: int, started: float, validated: float) -> pb.SynthesizeResponse:
    searched = time.perf_counter()
    response = convert.response_proto(outcome, fmt)
    done = time.perf_counter()
    response.timings.validate_seconds = validated - started
    response.timings.audio_encode_seconds = done - searched
    response.timings.total_seconds = done - started
    return response


class _statuses:
    """Map what went wrong to a gRPC status with a message that says what to do."""

    def __init__(self, grpc_context: RayServegRPCContext, timeout: float):
        self.grpc_context = grpc_context
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, (StatusError, GeneratorExit, asyncio.CancelledError)):
            return False
        code, message = _status_of(error, self.timeout)
        if code is None:
            return False
        self.grpc_context.set_code(code)
        self.grpc_context.set_details(message)
        raise StatusError(message) from error


def _status_of(error: BaseException, timeout: float) -> tuple[grpc.StatusCode | None, str]:
    while isinstance(error, RayTaskError) and error.cause is not None:
        error = error.cause  # an error raised in another replica: judge (and quote) the original
    if isinstance(error, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(error)
    if isinstance(error, (VoiceNotFound, VoiceNameError)):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, VoiceExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, (RequestError, SearchConfigError)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, (
            f"the search did not finish within {timeout:g} s: lower n, max_speech_tokens or the verifiers, "
            "or raise timeout_seconds (DescribeServer shows the limit)")
    if isinstance(error, (BackPressureError, KVBudgetExhausted)):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, (
            f"the server's queues are full ({_first_line(error)}); retry with backoff, or ask the operator for more "
            "replicas or a larger max_queued_requests")
    if isinstance(error, UNAVAILABLE_ERRORS):
        return grpc.StatusCode.UNAVAILABLE, (
            f"a stage of the service is down or restarted during the search ({type(error).__name__}: "
            f"{_first_line(error)}); retry the request")
    return None, ""


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else ""
