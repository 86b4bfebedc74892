"""The search orchestrator: `llasa_core.search.run_search`, unchanged, over deployment handles.

It loads only the tokenizer and the checkpoint's text front end (to build prompts); the models live in the stage deployments.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

import numpy as np
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from llasa_core.prompt import PromptBuilder
from llasa_core.search import SearchConfig, SearchResult, Stages, StepEvent, run_search
from llasa_core.stages import GenerateRequest, GenerateResult, ScoreContext, VerifierScore

from . import long_text, request_context
from .config import CodecArgs, LMArgs, ResilienceArgs, in_repo, resolve_model
from .request_context import DeadlineExceeded
from .voices import Voice, read_voice_file

logger = logging.getLogger("ray.serve")

# A replica that died (or a deployment without a live replica) answers with these; a call that hit
# one was not done, or was done by a replica that is gone, and a pure call may simply be repeated.
REPLICA_FAILURES = (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError)


class RequestError(ValueError):
    """A request the server cannot serve as sent; the message says what to change."""


class StageUnavailableError(RuntimeError):
    """A stage kept failing (dead replicas, timeouts) through every retry; the client may retry."""


def remaining(policy: ResilienceArgs) -> float:
    """Seconds the current request's deadline leaves (stage_timeout_s for a job without one)."""
    deadline = request_context.deadline.get()
    return policy.stage_timeout_s if deadline is None else deadline - time.time()


def _out_of_time(stage: str) -> DeadlineExceeded:
    return DeadlineExceeded(f"the request's deadline passed while waiting for {stage}")


async def call_idempotent(stage: str, call, policy: ResilienceArgs, alive=None):
    """`await call()` (one handle call of a pure stage method) within the time the request has left,
    repeated with backoff when the replica dies; never repeats an application error.

    A slow answer (queueing under load) is waited for, not taken for a death: every
    `stage_timeout_s` of waiting, `alive()` (when given) asks whether the stage has a running
    replica at all, and only a stage without one (Serve's router would wait for it forever) counts
    as failed. Raises DeadlineExceeded when the time runs out, StageUnavailableError when every
    attempt found the stage dead."""
    delay = policy.retry_backoff_s
    for attempt in range(policy.stage_retries + 1):
        if remaining(policy) <= 0:
            raise _out_of_time(stage)
        try:
            return await _wait_while_alive(stage, call, policy, alive)
        except REPLICA_FAILURES as err:
            error = f"{type(err).__name__}: {_first_line(err)}"
        except RayTaskError as err:
            if not isinstance(err.cause, REPLICA_FAILURES):
                raise
            error = f"{type(err.cause).__name__}: {_first_line(err.cause)}"
        except _NoLiveReplica as err:
            error = str(err)
        if attempt == policy.stage_retries:
            break
        counter = request_context.stage_retries.get()
        if counter is not None:
            counter[0] += 1
        logger.warning("%s call failed (%s); repeating it (%d of %d)", stage, error, attempt + 1, policy.stage_retries)
        await asyncio.sleep(min(delay, max(remaining(policy), 0)))
        delay *= 2
    raise StageUnavailableError(f"{stage} failed {policy.stage_retries + 1} times, last: {error}")


class _NoLiveReplica(RuntimeError):
    pass


async def _wait_while_alive(stage: str, call, policy: ResilienceArgs, alive):
    task = asyncio.ensure_future(call())
    try:
        while True:
            budget = remaining(policy)
            if budget <= 0:
                raise _out_of_time(stage)
            done, _ = await asyncio.wait({task}, timeout=min(budget, policy.stage_timeout_s))
            if done:
                return task.result()
            if alive is None or not await alive():
                raise _NoLiveReplica(f"no answer within stage_timeout_s = {policy.stage_timeout_s:g} s and no "
                                     "running replica")
    finally:
        if not task.done():
            task.cancel()


def running_replicas(handle: DeploymentHandle):
    """An `alive()` probe for call_idempotent: does the deployment have a RUNNING replica?"""
    async def alive() -> bool:
        try:
            status = await asyncio.to_thread(serve.status)
            deployment = status.applications[handle.app_name].deployments[handle.deployment_name]
            return deployment.replica_states.get("RUNNING", 0) > 0
        except Exception as err:  # noqa: BLE001  (no answer from the controller: assume the worst)
            logger.warning("could not read the status of %s (%s)", handle.deployment_name, _first_line(err))
            return False
    return alive


def _first_line(error: BaseException) -> str:
    text = (getattr(error, "message", None) or str(error)).strip()
    return text.splitlines()[0][:200] if text else ""


@dataclass(frozen=True)
class SynthesisJob:
    """A validated request, in plain Python: what the ingress hands the orchestrator."""

    text: str
    config: SearchConfig
    language: str = "en"
    reference_audio: np.ndarray | None = None
    reference_text: str | None = None
    reference_codes: tuple[int, ...] | None = None  # a saved voice's codes, encoded at upload: not encoded again
    deadline: float | None = None  # time.time() by which the answer is due; every stage call gets what it leaves
    word_timestamps: bool = False  # return each word's start and end in the chosen audio
    judge: bool = False  # score the chosen audio with the server's judge
    text_has_tags: bool = False  # the text marks non-speech tags ([laughs]) that ASR must not expect
    speech_tokens_asked: bool = False  # config.max_new_tokens is the request's own cap, not the default
    stream_step_tokens: int | None = None  # the step if the job streams audio (the request set none)


def in_voice(job: SynthesisJob, voice: Voice, codec_model: str) -> SynthesisJob:
    """The job cloning a stored voice: its samples and transcript, and its codes while the served
    codec is the one that made them (else the samples are encoded again)."""
    codes = tuple(voice.codes) if voice.codec == codec_model else None
    return dataclasses.replace(job, reference_audio=voice.audio, reference_text=voice.transcript,
                               reference_codes=codes)


@dataclass(frozen=True)
class AudioChunk:
    """Audio of the chosen candidate that will not change; a stream's chunks, joined, are its audio."""

    samples: np.ndarray  # float32 at the codec's sample rate
    start: int  # first sample's position in the whole audio


@dataclass
class SynthesisOutcome:
    result: SearchResult  # audio kept on the chosen candidate only
    prompt_tokens: int
    reference_encode_seconds: float
    search_seconds: float
    words: list[dict] = field(default_factory=list)  # word, start, end, probability (word_timestamps)
    judge: VerifierScore | None = None


class ServeLM:
    """The LM stage over a handle: every call of a session carries its id, so the session router
    (deployments/session_router.py) sends it to the replica that holds the session's KV cache.

    Not retried: a step continues a KV cache that lives only in one replica, so when that
    replica dies the step cannot be repeated elsewhere and the request ends with UNAVAILABLE
    (the client retries; with a seed the retry gives the same answer). Each step may take the
    time the request's deadline leaves; a step cancelled at the deadline frees its session."""

    def __init__(self, handle: DeploymentHandle, policy: ResilienceArgs):
        self.handle = handle
        self.policy = policy
        self._releases: set[asyncio.Task] = set()

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        try:
            async with asyncio.timeout(remaining(self.policy)):
                return await self.handle.options(session_id=request.session_id).generate.remote(request)
        except TimeoutError:
            raise _out_of_time("LMSampler") from None

    async def release(self, session_id: str) -> None:
        """Release the session even when the request was cancelled: the call runs in a task of its
        own, outside the request's context (Serve cancels every child call of a cancelled request,
        this one included), and is shielded from the caller's cancellation."""
        task = asyncio.get_running_loop().create_task(self._release(session_id), context=contextvars.Context())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        await asyncio.shield(task)

    async def _release(self, session_id: str) -> None:
        """Best effort and bounded: a session of a dead replica died with it."""
        try:
            async with asyncio.timeout(10):
                await self.handle.options(session_id=session_id).release.remote(session_id)
        except Exception as err:  # noqa: BLE001
            logger.warning("releasing an LM session failed (%s: %s)", type(err).__name__, _first_line(err))


class ServeCodec:
    """Decoding is a pure function of the codes: repeated on replica failure. The deadline travels
    with the call, so the codec drops the work of a request that ran out of time."""

    def __init__(self, handle: DeploymentHandle, policy: ResilienceArgs):
        self.handle = handle
        self.policy = policy

    async def decode(self, codes: Sequence[Sequence[int]]) -> list[np.ndarray]:
        deadline = request_context.deadline.get()
        return await call_idempotent("CodecDecoder", lambda: self.handle.decode.remote(codes, deadline), self.policy,
                                     running_replicas(self.handle))


class ServeVerifier:
    """Scoring is a pure function of its inputs: repeated on replica failure."""

    def __init__(self, name: str, handle: DeploymentHandle, policy: ResilienceArgs):
        self.name = name
        self.handle = handle
        self.policy = policy

    async def score(self, waveforms, contexts) -> list[VerifierScore]:
        deadline = request_context.deadline.get()
        return await call_idempotent(f"verifier {self.name!r}",
                                     lambda: self.handle.score.remote(waveforms, contexts, deadline),
                                     self.policy, running_replicas(self.handle))

    async def word_timestamps(self, waveforms, contexts) -> list[list[dict]]:
        return await call_idempotent(f"verifier {self.name!r}",
                                     lambda: self.handle.word_timestamps.remote(waveforms, contexts),
                                     self.policy, running_replicas(self.handle))


@serve.deployment(name="SearchOrchestrator", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=8)
class SearchOrchestrator:
    def __init__(
        self, lm: DeploymentHandle, codec: DeploymentHandle, verifiers: dict[str, DeploymentHandle],
        lm_args: LMArgs, tiny_cache_dir: str, resilience: ResilienceArgs = ResilienceArgs(),
        codec_args: CodecArgs = CodecArgs(), process_windows: dict[str, float] | None = None,
        judge: str | None = None, timestamps_verifier: str | None = None,
    ):
        self.prompt_builder = PromptBuilder.from_pretrained(resolve_model(lm_args.model, "llasa", tiny_cache_dir))
        self.long_text_voice = lm_args.long_text_voice
        self.default_voice = read_voice_file(in_repo(lm_args.default_voice)) if lm_args.default_voice else None
        self.codec_model = codec_args.model
        self.codec = codec
        self.policy = resilience
        self.stages = Stages(lm=ServeLM(lm, resilience), codec=ServeCodec(codec, resilience),
                             verifiers={name: ServeVerifier(name, h, resilience) for name, h in verifiers.items()},
                             decode_context_tokens=codec_args.decode_context_tokens,
                             decode_redo_tokens=codec_args.decode_redo_tokens,
                             process_windows=dict(process_windows or {}))
        # Listening to the answer after the search, on request: the judge (an ASR no search may
        # weight) and word timestamps (a faster-whisper ASR verifier).
        self.judge = self.stages.verifiers[judge] if judge else None
        self.timestamps = self.stages.verifiers[timestamps_verifier] if timestamps_verifier else None
        self._layout_known = False

    async def synthesize(self, job: SynthesisJob) -> SynthesisOutcome:
        return await self._run(job, on_step=None)

    async def synthesize_stream(self, job: SynthesisJob,
                                audio: bool = False) -> AsyncIterator[StepEvent | AudioChunk | SynthesisOutcome]:
        """StepEvents as the search makes them (with `audio`, AudioChunks too, as soon as the audio
        is fixed), then the SynthesisOutcome."""
        events: asyncio.Queue = asyncio.Queue()
        on_audio = None
        if audio and job.stream_step_tokens:
            job = dataclasses.replace(job, config=job.config.model_copy(update={"step_tokens": job.stream_step_tokens}))
        if audio:
            position = [0]

            def on_audio(samples: np.ndarray) -> None:
                events.put_nowait(AudioChunk(samples=samples, start=position[0]))
                position[0] += len(samples)
        task = asyncio.create_task(self._run(job, on_step=events.put_nowait, on_audio=on_audio))
        task.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (event := await events.get()) is not None:
                yield event
            yield task.result()
        finally:
            task.cancel()  # the client went away: stop the search (it releases its LM session)

    async def _run(self, job: SynthesisJob, on_step, on_audio=None) -> SynthesisOutcome:
        """The search, bounded by the job's deadline: out of time, it stops wherever it is (its
        stage calls cancelled, its LM session released) with DeadlineExceeded."""
        if job.deadline is None:
            return await self._search(job, on_step, on_audio)
        try:
            async with asyncio.timeout(job.deadline - time.time()):
                return await self._search(job, on_step, on_audio)
        except DeadlineExceeded:
            raise
        except TimeoutError:
            raise DeadlineExceeded("the request's deadline passed during the search") from None

    async def _search(self, job: SynthesisJob, on_step, on_audio=None) -> SynthesisOutcome:
        retries = [0]
        request_context.stage_retries.set(retries)  # this task's context: seen by every stage call of this request
        request_context.deadline.set(job.deadline)
        if not self._layout_known:
            rate, hop = await call_idempotent("CodecDecoder", lambda: self.codec.layout.remote(), self.policy,
                                              running_replicas(self.codec))
            self.stages.sample_rate, self.stages.samples_per_token = rate, hop
            self._layout_known = True
        started = time.perf_counter()
        if job.reference_audio is None and self.default_voice is not None:
            job = in_voice(job, self.default_voice, self.codec_model)
        reference_codes: list[int] = list(job.reference_codes or ())
        if job.reference_audio is not None and job.reference_codes is None:
            reference_codes = await call_idempotent(
                "CodecDecoder", lambda: self.codec.encode.remote(job.reference_audio), self.policy,
                running_replicas(self.codec))
        encoded = time.perf_counter()
        chunks = self._plan(job, reference_codes)
        if len(chunks) == 1:
            result, prompt_tokens = await self._search_text(job, job.text, self._chunk_config(job, job.text, 0),
                                                            job.reference_text,
                                                            reference_codes, job.reference_audio, on_step, on_audio)
        else:
            result, prompt_tokens = await self._search_chunks(job, chunks, reference_codes, on_step, on_audio)
        context = ScoreContext(text=job.text, language=job.language, reference_audio=job.reference_audio,
                               reference_text=job.reference_text, non_speech_tags=job.text_has_tags)
        words, judge = await self._listen(job, result.chosen.audio, context)
        result.account.stage_retries = retries[0]
        for candidate in result.candidates:
            if candidate is not result.chosen and not job.config.return_candidate_audio:
                candidate.audio = None  # only the chosen audio travels back
        return SynthesisOutcome(
            result=result,
            prompt_tokens=prompt_tokens,
            reference_encode_seconds=encoded - started,
            search_seconds=time.perf_counter() - encoded,
            words=words,
            judge=judge,
        )

    def _prompt(self, text: str, reference_text: str | None, reference_codes: Sequence[int]) -> list[int]:
        try:
            return self.prompt_builder(text, reference_text, reference_codes)
        except ValueError as err:
            raise RequestError(str(err)) from err

    def _plan(self, job: SynthesisJob, reference_codes: Sequence[int]) -> list[str]:
        """The text's chunks (deployments/long_text.py): each fits the context with its voice
        context (the reference; without one and with long_text_voice "previous", the previous
        chunk, for which half the context is kept) and the speech it may need. A request's own
        max_speech_tokens caps each chunk; without one, chunks are kept within the default cap
        where their sentences allow (a model speaks short texts best)."""
        limit = job.config.max_total_tokens
        if job.reference_audio is None and self.long_text_voice == "previous":
            limit //= 2

        def fits_context(text: str) -> bool:
            need = long_text.speech_tokens_for(text)
            if job.speech_tokens_asked:
                need = min(need, job.config.max_new_tokens)
            return len(self._prompt(text, job.reference_text, reference_codes)) + need <= limit

        def fits(text: str) -> bool:  # and, unless the request set its own cap, within the default cap
            asked = job.speech_tokens_asked or long_text.speech_tokens_for(text) <= job.config.max_new_tokens
            return asked and fits_context(text)

        try:
            return long_text.plan_chunks(job.text, job.language, fits, fits_context)
        except long_text.TextTooLong as err:
            raise RequestError(f"{err}: split it into shorter sentences, use a shorter reference voice, or ask the "
                               f"operator for a larger max_total_tokens (now {job.config.max_total_tokens})") from None

    def _chunk_config(self, job: SynthesisJob, text: str, index: int) -> SearchConfig:
        """Each chunk may speak as long as its text may need and not much longer (a runaway stops at
        long_text.speech_token_cap), unless the request set its own cap."""
        update: dict = {}
        if not job.speech_tokens_asked:
            update["max_new_tokens"] = long_text.speech_token_cap(text, job.config.max_new_tokens)
        if job.config.seed is not None:
            update["seed"] = job.config.seed + index
        return job.config.model_copy(update=update)

    async def _search_text(self, job: SynthesisJob, text: str, config: SearchConfig, reference_text: str | None,
                           reference_codes: Sequence[int], reference_audio: np.ndarray | None, on_step, on_audio
                           ) -> tuple[SearchResult, int]:
        prompt_ids = self._prompt(text, reference_text, reference_codes)
        if len(prompt_ids) >= config.max_total_tokens:
            raise RequestError(
                f"the prompt has {len(prompt_ids)} tokens, at or over the server's max_total_tokens "
                f"{config.max_total_tokens}: shorten the text or the reference voice"
            )
        context = ScoreContext(text=text, language=job.language, reference_audio=reference_audio,
                               reference_text=reference_text, non_speech_tags=job.text_has_tags)
        result = await run_search(config, self.stages, prompt_ids, context, reference_codes, on_step, on_audio)
        return result, len(prompt_ids)

    async def _search_chunks(self, job: SynthesisJob, chunks: list[str], reference_codes: Sequence[int],
                             on_step, on_audio) -> tuple[SearchResult, int]:
        """One search per chunk, in order, each with the reference voice (or, with long_text_voice
        "previous", the previous chunk's chosen speech) as its voice; the audio is joined with a short crossfade and, streaming, handed
        on chunk by chunk as it is fixed."""
        joined: list[np.ndarray] = []

        def keep(samples: np.ndarray) -> None:
            joined.append(samples)
            if on_audio is not None:
                on_audio(samples)

        joiner = long_text.AudioJoiner(keep)
        results: list[SearchResult] = []
        steps = [0]

        def step(event: StepEvent):
            return on_step(dataclasses.replace(event, step=event.step + steps[0])) if on_step else None

        voice = (job.reference_text, list(reference_codes), job.reference_audio)
        prompt_tokens = 0
        for index, text in enumerate(chunks):
            config = self._chunk_config(job, text, index)
            if job.reference_audio is None and self.long_text_voice == "previous" and results:
                previous = results[-1].chosen
                voice = (chunks[index - 1], previous.codes, previous.audio)
                if len(self._prompt(text, *voice[:2])) + config.max_new_tokens > config.max_total_tokens:
                    voice = (None, [], None)  # the previous chunk does not fit beside this one
            result, tokens = await self._search_text(job, text, config, *voice, step,
                                                     joiner.add if on_audio is not None else None)
            if on_audio is None:
                joiner.add(result.chosen.audio)
            joiner.end_chunk()
            steps[0] += result.steps
            prompt_tokens += tokens
            results.append(result)
        joiner.finish()
        return long_text.merge_results(results, np.concatenate(joined)), prompt_tokens

    async def _listen(self, job: SynthesisJob, audio: np.ndarray, context: ScoreContext
                      ) -> tuple[list[dict], VerifierScore | None]:
        """Word timestamps and the judge's verdict on the chosen audio, when the job asks (both
        at once; the ingress refuses a request for either where the server has none)."""
        words = self.timestamps.word_timestamps([audio], [context]) if job.word_timestamps else None
        judge = self.judge.score([audio], [context]) if job.judge else None
        done = await asyncio.gather(*(call for call in (words, judge) if call is not None))
        found = iter(done)
        return (next(found)[0] if words is not None else []), (next(found)[0] if judge is not None else None)
