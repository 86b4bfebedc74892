"""Between the wire and the engine: proto requests -> validated `SynthesisJob`s, and search
results -> proto responses. Every rejection is a `RequestError` that says what to change."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import soundfile as sf
from pydantic import ValidationError

from llasa_core.audio import SAMPLE_RATE, AudioError, read_audio, write_wav
from llasa_core.search import Candidate, SearchConfig, StepEvent
from llasa_core.search.result import StageAccount
from llasa_core.stages import VerifierScore
from llasa_core.validation import InputError, check_reference, check_text
from protos.llasa.tts.v1 import tts_pb2 as pb

from .config import LlasaAppArgs, Limits
from .orchestrator import AudioChunk, RequestError, SynthesisJob, SynthesisOutcome

API_VERSION = "llasa.tts.v1"
TOKENS_PER_SECOND = 50
STRATEGY_TO_PROTO = {"best_of_n": pb.STRATEGY_BEST_OF_N, "beam": pb.STRATEGY_BEAM, "dvts": pb.STRATEGY_DVTS,
                     "prm_orm": pb.STRATEGY_PRM_ORM}
STRATEGY_FROM_PROTO = {v: k for k, v in STRATEGY_TO_PROTO.items()}
AGGREGATION_TO_PROTO = {"last": pb.AGGREGATION_LAST, "min": pb.AGGREGATION_MIN, "mean": pb.AGGREGATION_MEAN,
                        "prod": pb.AGGREGATION_PROD}
AGGREGATION_FROM_PROTO = {v: k for k, v in AGGREGATION_TO_PROTO.items()}
OUTPUT_FORMATS = (pb.AUDIO_FORMAT_WAV, pb.AUDIO_FORMAT_FLAC, pb.AUDIO_FORMAT_PCM_F32LE)
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?")


def _opt(message, field: str, default):
    return getattr(message, field) if message.HasField(field) else default


def parse_request(request: pb.SynthesizeRequest, args: LlasaAppArgs) -> SynthesisJob:
    limits, defaults = args.limits, args.defaults
    text = request.text.strip()
    if not text:
        raise RequestError("text is empty: send the words to speak")
    if len(text) > limits.max_text_chars:
        raise RequestError(f"text has {len(text)} characters, over this server's limit of {limits.max_text_chars}: "
                           "split it into shorter requests")
    _check(check_text, text)
    search, sampling = request.search, request.sampling
    if search.strategy and search.strategy not in STRATEGY_FROM_PROTO:
        raise RequestError(f"unknown strategy {search.strategy}; use one of {sorted(STRATEGY_TO_PROTO)}")
    if search.aggregation and search.aggregation not in AGGREGATION_FROM_PROTO:
        raise RequestError(f"unknown aggregation {search.aggregation}; use one of {sorted(AGGREGATION_TO_PROTO)}")
    if request.output_format and request.output_format not in OUTPUT_FORMATS:
        raise RequestError(f"unknown output_format {request.output_format}; use WAV, FLAC or PCM_F32LE")
    n = _opt(search, "n", defaults.n)
    if not 1 <= n <= limits.max_n:
        raise RequestError(f"n = {n} is outside [1, max_n = {limits.max_n}] (this server's limit): lower n")
    beam_width = _opt(search, "beam_width", defaults.beam_width)
    if not 1 <= beam_width <= limits.max_beam_width:
        raise RequestError(f"beam_width = {beam_width} is outside [1, max_beam_width = {limits.max_beam_width}] "
                           "(this server's limit)")
    max_speech_tokens = _opt(search, "max_speech_tokens", defaults.max_speech_tokens)
    if not 1 <= max_speech_tokens <= limits.max_speech_tokens:
        raise RequestError(f"max_speech_tokens = {max_speech_tokens} must be in [1, {limits.max_speech_tokens}] "
                           f"(the server's limit; 50 tokens = 1 s)")
    if n * max_speech_tokens > limits.max_search_tokens:
        raise RequestError(f"n * max_speech_tokens = {n} * {max_speech_tokens} = {n * max_speech_tokens} speech "
                           f"tokens is over this server's limit max_search_tokens = {limits.max_search_tokens}: "
                           "lower n or max_speech_tokens")
    step_tokens = _opt(search, "step_tokens", defaults.step_tokens)
    stream_step_tokens = None if search.HasField("step_tokens") else defaults.stream_step_tokens
    prm_steps = _opt(search, "prm_steps", defaults.prm_steps)
    if step_tokens < 1:
        raise RequestError(f"step_tokens = {step_tokens} must be at least 1")
    smallest_step = min(step_tokens, stream_step_tokens or step_tokens)  # a stream may step by the smaller
    steps = -(-max_speech_tokens // smallest_step)
    strategy = STRATEGY_FROM_PROTO.get(search.strategy, defaults.strategy)
    if strategy != "best_of_n" and steps > limits.max_steps:
        raise RequestError(f"max_speech_tokens / step_tokens = {max_speech_tokens} / {smallest_step} makes {steps} "
                           f"search steps, over this server's limit max_steps = {limits.max_steps}: "
                           "raise step_tokens or lower max_speech_tokens")
    if strategy == "prm_orm" and prm_steps > limits.max_steps:
        raise RequestError(f"prm_steps = {prm_steps} is over this server's limit max_steps = {limits.max_steps}")
    timeout = _opt(request, "timeout_seconds", defaults.timeout_seconds)
    if not 0 < timeout <= limits.max_timeout_seconds:  # also refuses NaN
        raise RequestError(f"timeout_seconds = {timeout} must be in (0, {limits.max_timeout_seconds}]")
    configured = {v.name for v in args.verifiers}
    process, outcome = dict(search.process_verifiers), dict(search.outcome_verifiers)
    named = set(process) | set(outcome)
    if len(named) > limits.max_verifiers:
        raise RequestError(f"the request names {len(named)} verifiers, over this server's limit max_verifiers = "
                           f"{limits.max_verifiers}")
    if args.judge in named:
        raise RequestError(f"verifier {args.judge!r} is this server's judge: no search may weight it; ask for its "
                           "verdict with `judge` instead")
    unknown = sorted(named - configured)
    if unknown:
        raise RequestError(f"unknown verifier(s) {[_shorten(u) for u in unknown[:5]]}; "
                           f"this server has {sorted(configured)}")
    for role, weights in (("process_verifiers", process), ("outcome_verifiers", outcome)):
        bad = {name: w for name, w in weights.items() if not 0 < w < float("inf")}
        if bad:
            raise RequestError(f"search.{role}: weights must be positive and finite, got {bad}")
    if not process and not outcome:
        process, outcome = dict(defaults.process_verifiers), dict(defaults.outcome_verifiers)
    temperature = _opt(sampling, "temperature", defaults.temperature)
    if not (temperature == 0 or 0.01 <= temperature <= 10):
        raise RequestError(f"sampling.temperature = {temperature:g} must be 0 (greedy) or in [0.01, 10]")
    top_p = _opt(sampling, "top_p", defaults.top_p)
    if not 0 < top_p <= 1:
        raise RequestError(f"sampling.top_p = {top_p:g} must be in (0, 1]")
    repetition_penalty = _opt(sampling, "repetition_penalty", defaults.repetition_penalty)
    if not 0.1 <= repetition_penalty <= 10:
        raise RequestError(f"sampling.repetition_penalty = {repetition_penalty:g} must be in [0.1, 10]")
    try:
        config = SearchConfig(
            strategy=strategy,
            n=n,
            beam_width=beam_width,
            step_tokens=step_tokens,
            prm_steps=prm_steps,
            aggregation=AGGREGATION_FROM_PROTO.get(search.aggregation, defaults.aggregation),
            process_verifiers=process,
            outcome_verifiers=outcome,
            temperature=temperature,
            top_p=top_p,
            top_k=_opt(sampling, "top_k", defaults.top_k),
            repetition_penalty=repetition_penalty,
            max_total_tokens=limits.max_total_tokens,
            max_new_tokens=max_speech_tokens,
            seed=_opt(sampling, "seed", None),
            allow_partial_verifiers=search.allow_partial_verifiers,
            return_scores=search.return_scores,
            return_candidate_audio=search.return_candidate_audio,
        )
    except ValidationError as err:
        raise RequestError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'search'}: {_shorten(e['msg'])}"
                                     for e in err.errors())) from err
    reference_audio = reference_text = None
    if request.voice_id and request.HasField("reference"):
        raise RequestError("send either voice_id (a saved voice) or reference (inline audio), not both")
    if request.HasField("reference"):
        reference_text = request.reference.transcript.strip()
        if not request.reference.audio:
            raise RequestError("reference.audio is empty: send the reference voice as a WAV, FLAC or OGG file")
        if not reference_text:
            raise RequestError("reference.transcript is empty: send what the reference voice says")
        if len(reference_text) > limits.max_text_chars:
            raise RequestError(f"reference.transcript has {len(reference_text)} characters, over this server's "
                               f"limit of {limits.max_text_chars}")
        _check(check_text, reference_text, "reference.transcript")
        reference_audio = decode_reference(request.reference.audio, limits)
        _check(check_reference, reference_audio)
    if request.word_timestamps and not args.timestamps_verifier:
        raise RequestError("this server gives no word timestamps (no timestamps_verifier configured): leave "
                           "word_timestamps unset")
    if request.judge and not args.judge:
        raise RequestError("this server has no judge configured: leave judge unset")
    language = request.language or "en"
    if not LANGUAGE_CODE.fullmatch(language):
        raise RequestError(f"language {_shorten(language)!r} is not a language code such as 'en', 'zh' or 'en-US'")
    return SynthesisJob(
        text=text, config=config,
        language=language, reference_audio=reference_audio, reference_text=reference_text,
        deadline=time.time() + timeout, word_timestamps=request.word_timestamps, judge=request.judge,
        text_has_tags=request.text_has_tags, speech_tokens_asked=search.HasField("max_speech_tokens"),
        stream_step_tokens=stream_step_tokens,
    )


def _check(check, *args) -> None:
    """Run a llasa_core.validation check; its InputError becomes this layer's RequestError."""
    try:
        check(*args)
    except InputError as err:
        raise RequestError(str(err)) from None


def decode_reference(data: bytes, limits: Limits) -> np.ndarray:
    """A reference voice file -> 16 kHz mono float32, within the limits, whatever the bytes are.

    Size, sample rate and duration are checked from the header before any sample is decoded, and
    read_audio stops decoding one block past the duration limit, so a small file that claims or
    expands to hours (a FLAC of silence) costs no more memory than the limit. Every failure is a
    RequestError (INVALID_ARGUMENT); nothing else escapes.
    """
    if len(data) > limits.max_reference_bytes:
        raise RequestError(f"reference.audio is {len(data)} bytes, over this server's limit max_reference_bytes = "
                           f"{limits.max_reference_bytes}: send a shorter clip or FLAC")
    try:
        info = sf.info(io.BytesIO(data))
        rate, channels = int(info.samplerate), int(info.channels)
    except Exception as err:  # noqa: BLE001  (libsndfile says many things about garbage)
        raise RequestError(f"reference.audio: could not read audio ({_shorten(_first_line(err))}); "
                           "send a WAV, FLAC or OGG file") from None
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise RequestError(f"reference.audio has sample rate {rate} Hz; this server takes "
                           f"{limits.min_sample_rate} to {limits.max_sample_rate} Hz")
    if not 1 <= channels <= 8:
        raise RequestError(f"reference.audio has {channels} channels; send mono or stereo")
    if info.frames > limits.max_reference_seconds * rate:
        raise RequestError(f"reference voice is {info.frames / rate:.1f} s, over this server's limit of "
                           f"{limits.max_reference_seconds} s: send a shorter clip")
    try:  # the header may lie: read_audio bounds what it decodes by the same limit
        return read_audio(data, max_seconds=limits.max_reference_seconds)
    except AudioError as err:
        raise RequestError(f"reference.audio: {_shorten(str(err), 200)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _shorten(text: str, limit: int = 80) -> str:
    """Echo at most `limit` characters of what a client sent (never a whole garbage field)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def timeout_of(request: pb.SynthesizeRequest, args: LlasaAppArgs) -> float:
    return _opt(request, "timeout_seconds", args.defaults.timeout_seconds)


def encode_audio(audio: np.ndarray, fmt: int) -> bytes:
    if fmt == pb.AUDIO_FORMAT_PCM_F32LE:
        return np.asarray(audio, dtype="<f4").tobytes()
    if fmt == pb.AUDIO_FORMAT_FLAC:
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return buffer.getvalue()
    return write_wav(audio)


def _verdicts(scores: dict[str, VerifierScore]) -> list[pb.VerifierVerdict]:
    return [
        pb.VerifierVerdict(verifier=name, score=v.score, metric=v.metric, raw=v.raw, reason=v.reason,
                           detail={k: str(x) for k, x in v.detail.items()})
        for name, v in scores.items()
    ]


def candidate_proto(c: Candidate, samples_per_token: int = 320) -> pb.Candidate:
    return pb.Candidate(
        id=c.id, group=c.group, parent=c.parent, num_tokens=len(c.codes),
        audio_seconds=len(c.codes) * samples_per_token / SAMPLE_RATE, finished=c.finished, truncated=c.truncated,
        step_scores=c.step_scores, final_score=c.final_score,
        process_scores=_verdicts(c.process_scores), outcome_scores=_verdicts(c.outcome_scores),
    )


def _stage(a: StageAccount) -> pb.StageAccount:
    return pb.StageAccount(calls=a.calls, items=a.items, audio_seconds=a.audio_seconds, seconds=a.seconds,
                           context_audio_seconds=a.context_seconds)


def response_proto(outcome: SynthesisOutcome, fmt: int) -> pb.SynthesizeResponse:
    result, account = outcome.result, outcome.result.account
    fmt = fmt or pb.AUDIO_FORMAT_WAV
    audio = result.chosen.audio if result.chosen.audio is not None else np.zeros(0, np.float32)
    return pb.SynthesizeResponse(
        audio=encode_audio(audio, fmt), format=fmt, sample_rate=SAMPLE_RATE, audio_seconds=len(audio) / SAMPLE_RATE,
        strategy=result.strategy, prompt_tokens=outcome.prompt_tokens,
        chosen=candidate_proto(result.chosen), candidates=[candidate_proto(c) for c in result.candidates],
        account=pb.ComputeAccount(
            lm_prefill_tokens=account.lm_prefill_tokens, lm_generated_tokens=account.lm_generated_tokens,
            lm=_stage(account.lm), codec=_stage(account.codec),
            verifiers={name: _stage(a) for name, a in account.verifiers.items()},
            search_seconds=account.wall_seconds, steps=result.steps, stage_retries=account.stage_retries,
            first_audio_seconds=account.first_audio_seconds,
        ),
        timings=pb.Timings(reference_encode_seconds=outcome.reference_encode_seconds,
                           search_seconds=outcome.search_seconds),
        verifiers_used=result.verifiers_used,
        verifiers_failed=[pb.VerifierFailure(verifier=name, reason=reason)
                          for name, reason in result.verifiers_failed.items()],
        words=word_protos(outcome), judge=judge_proto(outcome),
    )


def word_protos(outcome: SynthesisOutcome) -> list[pb.WordTime]:
    return [pb.WordTime(word=w["word"], start_seconds=w["start"], end_seconds=w["end"],
                        probability=w.get("probability", 0.0)) for w in outcome.words]


def judge_proto(outcome: SynthesisOutcome) -> pb.VerifierVerdict | None:
    return _verdicts({"judge": outcome.judge})[0] if outcome.judge is not None else None


def audio_chunk_proto(chunk: AudioChunk, elapsed: float) -> pb.AudioChunk:
    return pb.AudioChunk(pcm_f32le=np.asarray(chunk.samples, dtype="<f4").tobytes(), sample_rate=SAMPLE_RATE,
                         start_seconds=chunk.start / SAMPLE_RATE, elapsed_seconds=elapsed)


def progress_proto(event: StepEvent, elapsed: float) -> pb.SearchProgress:
    return pb.SearchProgress(step=event.step, live=event.live, finished=event.finished, best_score=event.best_score,
                             lm_generated_tokens=event.lm_generated_tokens, elapsed_seconds=elapsed,
                             candidates=[pb.StepCandidate(id=c.id, parent=c.parent, group=c.group, score=c.score,
                                                          kept=c.kept, finished=c.finished) for c in event.candidates])


def describe(args: LlasaAppArgs) -> pb.ServerDescription:
    d, limits = args.defaults, args.limits
    return pb.ServerDescription(
        api_version=API_VERSION,
        lm=pb.ModelInfo(name=args.lm.model, kind="llasa", device=args.lm.device,
                        detail={"dtype": args.lm.dtype, **({"default_voice": args.lm.default_voice}
                                                           if args.lm.default_voice else {})}),
        codec=pb.ModelInfo(name=args.codec.model, kind="xcodec2", device=args.codec.device),
        verifiers=[pb.VerifierInfo(name=v.name, kind=v.kind, backend=v.backend, model=v.model or "",
                                   default_weight=v.weight) for v in args.verifiers],
        limits=pb.Limits(**limits.model_dump()),
        defaults=pb.Defaults(
            strategy=STRATEGY_TO_PROTO[d.strategy], n=d.n, beam_width=d.beam_width, step_tokens=d.step_tokens,
            prm_steps=d.prm_steps, aggregation=AGGREGATION_TO_PROTO[d.aggregation],
            max_speech_tokens=d.max_speech_tokens, temperature=d.temperature, top_p=d.top_p, top_k=d.top_k,
            repetition_penalty=d.repetition_penalty, process_verifiers=d.process_verifiers,
            outcome_verifiers=d.outcome_verifiers, timeout_seconds=d.timeout_seconds,
        ),
        sample_rate=SAMPLE_RATE, tokens_per_second=TOKENS_PER_SECOND,
        strategies=list(STRATEGY_TO_PROTO.values()), output_formats=list(OUTPUT_FORMATS),
        api_key_required=args.auth.enabled,
        judge=args.judge or "", timestamps_verifier=args.timestamps_verifier or "",
    )
