from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_BEST_OF_N: _ClassVar[Strategy]
    STRATEGY_BEAM: _ClassVar[Strategy]
    STRATEGY_DVTS: _ClassVar[Strategy]
    STRATEGY_PRM_ORM: _ClassVar[Strategy]

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_LAST: _ClassVar[Aggregation]
    AGGREGATION_MIN: _ClassVar[Aggregation]
    AGGREGATION_MEAN: _ClassVar[Aggregation]
    AGGREGATION_PROD: _ClassVar[Aggregation]

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_FLAC: _ClassVar[AudioFormat]
    AUDIO_FORMAT_PCM_F32LE: _ClassVar[AudioFormat]
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_BEST_OF_N: Strategy
STRATEGY_BEAM: Strategy
STRATEGY_DVTS: Strategy
STRATEGY_PRM_ORM: Strategy
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_LAST: Aggregation
AGGREGATION_MIN: Aggregation
AGGREGATION_MEAN: Aggregation
AGGREGATION_PROD: Aggregation
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_FLAC: AudioFormat
AUDIO_FORMAT_PCM_F32LE: AudioFormat

class ReferenceVoice(_message.Message):
    __slots__ = ("audio", "transcript")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    transcript: str
    def __init__(self, audio: _Optional[bytes] = ..., transcript: _Optional[str] = ...) -> None: ...

class SearchOptions(_message.Message):
    __slots__ = ("strategy", "n", "beam_width", "step_tokens", "prm_steps", "aggregation", "process_verifiers", "outcome_verifiers", "max_speech_tokens", "allow_partial_verifiers", "return_scores", "return_candidate_audio")
    class ProcessVerifiersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class OutcomeVerifiersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRM_STEPS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    PROCESS_VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    MAX_SPEECH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    RETURN_SCORES_FIELD_NUMBER: _ClassVar[int]
    RETURN_CANDIDATE_AUDIO_FIELD_NUMBER: _ClassVar[int]
    strategy: Strategy
    n: int
    beam_width: int
    step_tokens: int
    prm_steps: int
    aggregation: Aggregation
    process_verifiers: _containers.ScalarMap[str, float]
    outcome_verifiers: _containers.ScalarMap[str, float]
    max_speech_tokens: int
    allow_partial_verifiers: bool
    return_scores: bool
    return_candidate_audio: bool
    def __init__(self, strategy: _Optional[_Union[Strategy, str]] = ..., n: _Optional[int] = ..., beam_width: _Optional[int] = ..., step_tokens: _Optional[int] = ..., prm_steps: _Optional[int] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., process_verifiers: _Optional[_Mapping[str, float]] = ..., outcome_verifiers: _Optional[_Mapping[str, float]] = ..., max_speech_tokens: _Optional[int] = ..., allow_partial_verifiers: _Optional[bool] = ..., return_scores: _Optional[bool] = ..., return_candidate_audio: _Optional[bool] = ...) -> None: ...

class SamplingOptions(_message.Message):
    __slots__ = ("temperature", "top_p", "top_k", "repetition_penalty", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("text", "language", "reference", "search", "sampling", "output_format", "timeout_seconds", "word_timestamps", "judge", "text_has_tags", "voice_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_HAS_TAGS_FIELD_NUMBER: _ClassVar[int]
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    language: str
    reference: ReferenceVoice
    search: SearchOptions
    sampling: SamplingOptions
    output_format: AudioFormat
    timeout_seconds: float
    word_timestamps: bool
    judge: bool
    text_has_tags: bool
    voice_id: str
    def __init__(self, text: _Optional[str] = ..., language: _Optional[str] = ..., reference: _Optional[_Union[ReferenceVoice, _Mapping]] = ..., search: _Optional[_Union[SearchOptions, _Mapping]] = ..., sampling: _Optional[_Union[SamplingOptions, _Mapping]] = ..., output_format: _Optional[_Union[AudioFormat, str]] = ..., timeout_seconds: _Optional[float] = ..., word_timestamps: _Optional[bool] = ..., judge: _Optional[bool] = ..., text_has_tags: _Optional[bool] = ..., voice_id: _Optional[str] = ...) -> None: ...

class WordTime(_message.Message):
    __slots__ = ("word", "start_seconds", "end_seconds", "probability")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_seconds: float
    end_seconds: float
    probability: float
    def __init__(self, word: _Optional[str] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class VerifierVerdict(_message.Message):
    __slots__ = ("verifier", "score", "metric", "raw", "reason", "detail")
    class DetailEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    verifier: str
    score: float
    metric: str
    raw: float
    reason: str
    detail: _containers.ScalarMap[str, str]
    def __init__(self, verifier: _Optional[str] = ..., score: _Optional[float] = ..., metric: _Optional[str] = ..., raw: _Optional[float] = ..., reason: _Optional[str] = ..., detail: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("id", "group", "parent", "num_tokens", "audio_seconds", "finished", "truncated", "step_scores", "final_score", "process_scores", "outcome_scores")
    ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STEP_SCORES_FIELD_NUMBER: _ClassVar[int]
    FINAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    PROCESS_SCORES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_SCORES_FIELD_NUMBER: _ClassVar[int]
    id: int
    group: int
    parent: int
    num_tokens: int
    audio_seconds: float
    finished: bool
    truncated: bool
    step_scores: _containers.RepeatedScalarFieldContainer[float]
    final_score: float
    process_scores: _containers.RepeatedCompositeFieldContainer[VerifierVerdict]
    outcome_scores: _containers.RepeatedCompositeFieldContainer[VerifierVerdict]
    def __init__(self, id: _Optional[int] = ..., group: _Optional[int] = ..., parent: _Optional[int] = ..., num_tokens: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., finished: _Optional[bool] = ..., truncated: _Optional[bool] = ..., step_scores: _Optional[_Iterable[float]] = ..., final_score: _Optional[float] = ..., process_scores: _Optional[_Iterable[_Union[VerifierVerdict, _Mapping]]] = ..., outcome_scores: _Optional[_Iterable[_Union[VerifierVerdict, _Mapping]]] = ...) -> None: ...

class StageAccount(_message.Message):
    __slots__ = ("calls", "items", "audio_seconds", "seconds", "context_audio_seconds")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    calls: int
    items: int
    audio_seconds: float
    seconds: float
    context_audio_seconds: float
    def __init__(self, calls: _Optional[int] = ..., items: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., seconds: _Optional[float] = ..., context_audio_seconds: _Optional[float] = ...) -> None: ...

class ComputeAccount(_message.Message):
    __slots__ = ("lm_prefill_tokens", "lm_generated_tokens", "lm", "codec", "verifiers", "search_seconds", "steps", "stage_retries", "first_audio_seconds")
    class VerifiersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: StageAccount
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[StageAccount, _Mapping]] = ...) -> None: ...
    LM_PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LM_GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LM_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STAGE_RETRIES_FIELD_NUMBER: _ClassVar[int]
    FIRST_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    lm_prefill_tokens: int
    lm_generated_tokens: int
    lm: StageAccount
    codec: StageAccount
    verifiers: _containers.MessageMap[str, StageAccount]
    search_seconds: float
    steps: int
    stage_retries: int
    first_audio_seconds: float
    def __init__(self, lm_prefill_tokens: _Optional[int] = ..., lm_generated_tokens: _Optional[int] = ..., lm: _Optional[_Union[StageAccount, _Mapping]] = ..., codec: _Optional[_Union[StageAccount, _Mapping]] = ..., verifiers: _Optional[_Mapping[str, StageAccount]] = ..., search_seconds: _Optional[float] = ..., steps: _Optional[int] = ..., stage_retries: _Optional[int] = ..., first_audio_seconds: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("validate_seconds", "reference_encode_seconds", "search_seconds", "audio_encode_seconds", "total_seconds", "first_audio_seconds")
    VALIDATE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ENCODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_ENCODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    validate_seconds: float
    reference_encode_seconds: float
    search_seconds: float
    audio_encode_seconds: float
    total_seconds: float
    first_audio_seconds: float
    def __init__(self, validate_seconds: _Optional[float] = ..., reference_encode_seconds: _Optional[float] = ..., search_seconds: _Optional[float] = ..., audio_encode_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ..., first_audio_seconds: _Optional[float] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("audio", "format", "sample_rate", "audio_seconds", "strategy", "prompt_tokens", "chosen", "candidates", "account", "timings", "verifiers_used", "verifiers_failed", "words", "judge")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_USED_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_FAILED_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    format: AudioFormat
    sample_rate: int
    audio_seconds: float
    strategy: str
    prompt_tokens: int
    chosen: Candidate
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    account: ComputeAccount
    timings: Timings
    verifiers_used: _containers.RepeatedScalarFieldContainer[str]
    verifiers_failed: _containers.RepeatedCompositeFieldContainer[VerifierFailure]
    words: _containers.RepeatedCompositeFieldContainer[WordTime]
    judge: VerifierVerdict
    def __init__(self, audio: _Optional[bytes] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., sample_rate: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., strategy: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., chosen: _Optional[_Union[Candidate, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., account: _Optional[_Union[ComputeAccount, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., verifiers_used: _Optional[_Iterable[str]] = ..., verifiers_failed: _Optional[_Iterable[_Union[VerifierFailure, _Mapping]]] = ..., words: _Optional[_Iterable[_Union[WordTime, _Mapping]]] = ..., judge: _Optional[_Union[VerifierVerdict, _Mapping]] = ...) -> None: ...

class VerifierFailure(_message.Message):
    __slots__ = ("verifier", "reason")
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    verifier: str
    reason: str
    def __init__(self, verifier: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SearchProgress(_message.Message):
    __slots__ = ("step", "live", "finished", "best_score", "lm_generated_tokens", "elapsed_seconds", "candidates")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    LM_GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    step: int
    live: int
    finished: int
    best_score: float
    lm_generated_tokens: int
    elapsed_seconds: float
    candidates: _containers.RepeatedCompositeFieldContainer[StepCandidate]
    def __init__(self, step: _Optional[int] = ..., live: _Optional[int] = ..., finished: _Optional[int] = ..., best_score: _Optional[float] = ..., lm_generated_tokens: _Optional[int] = ..., elapsed_seconds: _Optional[float] = ..., candidates: _Optional[_Iterable[_Union[StepCandidate, _Mapping]]] = ...) -> None: ...

class StepCandidate(_message.Message):
    __slots__ = ("id", "parent", "group", "score", "kept", "finished")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent: int
    group: int
    score: float
    kept: bool
    finished: bool
    def __init__(self, id: _Optional[int] = ..., parent: _Optional[int] = ..., group: _Optional[int] = ..., score: _Optional[float] = ..., kept: _Optional[bool] = ..., finished: _Optional[bool] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("pcm_f32le", "sample_rate", "start_seconds", "elapsed_seconds")
    PCM_F32LE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    pcm_f32le: bytes
    sample_rate: int
    start_seconds: float
    elapsed_seconds: float
    def __init__(self, pcm_f32le: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., start_seconds: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ...) -> None: ...

class SynthesizeEvent(_message.Message):
    __slots__ = ("progress", "result", "audio")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    progress: SearchProgress
    result: SynthesizeResponse
    audio: AudioChunk
    def __init__(self, progress: _Optional[_Union[SearchProgress, _Mapping]] = ..., result: _Optional[_Union[SynthesizeResponse, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ...) -> None: ...

class DescribeServerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "device", "detail")
    class DetailEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    device: str
    detail: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., device: _Optional[str] = ..., detail: _Optional[_Mapping[str, str]] = ...) -> None: ...

class VerifierInfo(_message.Message):
    __slots__ = ("name", "kind", "backend", "model", "default_weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    backend: str
    model: str
    default_weight: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., default_weight: _Optional[float] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_text_chars", "max_n", "max_speech_tokens", "max_total_tokens", "max_reference_seconds", "max_timeout_seconds", "max_reference_bytes", "min_sample_rate", "max_sample_rate", "max_beam_width", "max_steps", "max_search_tokens", "max_verifiers")
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_N_FIELD_NUMBER: _ClassVar[int]
    MAX_SPEECH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_REFERENCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_REFERENCE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEARCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    max_text_chars: int
    max_n: int
    max_speech_tokens: int
    max_total_tokens: int
    max_reference_seconds: float
    max_timeout_seconds: float
    max_reference_bytes: int
    min_sample_rate: int
    max_sample_rate: int
    max_beam_width: int
    max_steps: int
    max_search_tokens: int
    max_verifiers: int
    def __init__(self, max_text_chars: _Optional[int] = ..., max_n: _Optional[int] = ..., max_speech_tokens: _Optional[int] = ..., max_total_tokens: _Optional[int] = ..., max_reference_seconds: _Optional[float] = ..., max_timeout_seconds: _Optional[float] = ..., max_reference_bytes: _Optional[int] = ..., min_sample_rate: _Optional[int] = ..., max_sample_rate: _Optional[int] = ..., max_beam_width: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_search_tokens: _Optional[int] = ..., max_verifiers: _Optional[int] = ...) -> None: ...

class Defaults(_message.Message):
    __slots__ = ("strategy", "n", "beam_width", "step_tokens", "prm_steps", "aggregation", "max_speech_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "process_verifiers", "outcome_verifiers", "timeout_seconds")
    class ProcessVerifiersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class OutcomeVerifiersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRM_STEPS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    MAX_SPEECH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    PROCESS_VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    strategy: Strategy
    n: int
    beam_width: int
    step_tokens: int
    prm_steps: int
    aggregation: Aggregation
    max_speech_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    process_verifiers: _containers.ScalarMap[str, float]
    outcome_verifiers: _containers.ScalarMap[str, float]
    timeout_seconds: float
    def __init__(self, strategy: _Optional[_Union[Strategy, str]] = ..., n: _Optional[int] = ..., beam_width: _Optional[int] = ..., step_tokens: _Optional[int] = ..., prm_steps: _Optional[int] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., max_speech_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., process_verifiers: _Optional[_Mapping[str, float]] = ..., outcome_verifiers: _Optional[_Mapping[str, float]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class ServerDescription(_message.Message):
    __slots__ = ("api_version", "lm", "codec", "verifiers", "limits", "defaults", "sample_rate", "tokens_per_second", "strategies", "output_formats", "api_key_required", "judge", "timestamps_verifier")
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    LM_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMATS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_VERIFIER_FIELD_NUMBER: _ClassVar[int]
    api_version: str
    lm: ModelInfo
    codec: ModelInfo
    verifiers: _containers.RepeatedCompositeFieldContainer[VerifierInfo]
    limits: Limits
    defaults: Defaults
    sample_rate: int
    tokens_per_second: int
    strategies: _containers.RepeatedScalarFieldContainer[Strategy]
    output_formats: _containers.RepeatedScalarFieldContainer[AudioFormat]
    api_key_required: bool
    judge: str
    timestamps_verifier: str
    def __init__(self, api_version: _Optional[str] = ..., lm: _Optional[_Union[ModelInfo, _Mapping]] = ..., codec: _Optional[_Union[ModelInfo, _Mapping]] = ..., verifiers: _Optional[_Iterable[_Union[VerifierInfo, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., defaults: _Optional[_Union[Defaults, _Mapping]] = ..., sample_rate: _Optional[int] = ..., tokens_per_second: _Optional[int] = ..., strategies: _Optional[_Iterable[_Union[Strategy, str]]] = ..., output_formats: _Optional[_Iterable[_Union[AudioFormat, str]]] = ..., api_key_required: _Optional[bool] = ..., judge: _Optional[str] = ..., timestamps_verifier: _Optional[str] = ...) -> None: ...

class CreateVoiceRequest(_message.Message):
    __slots__ = ("name", "audio", "transcript")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    name: str
    audio: bytes
    transcript: str
    def __init__(self, name: _Optional[str] = ..., audio: _Optional[bytes] = ..., transcript: _Optional[str] = ...) -> None: ...

class SavedVoice(_message.Message):
    __slots__ = ("id", "transcript", "seconds", "codes", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    transcript: str
    seconds: float
    codes: int
    created_at: int
    def __init__(self, id: _Optional[str] = ..., transcript: _Optional[str] = ..., seconds: _Optional[float] = ..., codes: _Optional[int] = ..., created_at: _Optional[int] = ...) -> None: ...

class ListVoicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVoicesResponse(_message.Message):
    __slots__ = ("voices",)
    VOICES_FIELD_NUMBER: _ClassVar[int]
    voices: _containers.RepeatedCompositeFieldContainer[SavedVoice]
    def __init__(self, voices: _Optional[_Iterable[_Union[SavedVoice, _Mapping]]] = ...) -> None: ...

class GetVoiceRequest(_message.Message):
    __slots__ = ("voice_id",)
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    def __init__(self, voice_id: _Optional[str] = ...) -> None: ...

class DeleteVoiceRequest(_message.Message):
    __slots__ = ("voice_id",)
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    def __init__(self, voice_id: _Optional[str] = ...) -> None: ...

class DeleteVoiceResponse(_message.Message):
    __slots__ = ("voice_id", "deleted")
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    deleted: bool
    def __init__(self, voice_id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...
