"""The state of one search and its calls to the stages, each one counted and timed.

Strategies only decide which candidates to keep; everything that touches a stage goes through
`SearchRun`, so the compute account cannot miss a token or a second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping, Sequence

import numpy as np

from ..audio import CROSSFADE_SAMPLES, continue_audio
from ..stages import CodecStage, GenerateRequest, LMStage, ScoreContext, VerifierScore, VerifierStage
from .config import SearchConfig
from .result import Candidate, ComputeAccount, SearchResult, StepCandidate, StepEvent
from .scoring import aggregate, combine


@dataclass
class Stages:
    """The stage interfaces, and how the search spends them.

    Audio is decoded a step at a time: each candidate's new codes with `decode_context_tokens`
    earlier codes as left context, of which the last `decode_redo_tokens` are decoded again and
    replace the audio that was decoded without the codes after it (bench/bench_codec_window.py
    measures both). `process_windows` gives a process verifier (by name) only the trailing seconds
    of a partial candidate it needs, e.g. speaker similarity; the others hear the whole prefix.
    """

    lm: LMStage
    codec: CodecStage
    verifiers: Mapping[str, VerifierStage]
    sample_rate: int = 16_000
    samples_per_token: int = 320
    decode_context_tokens: int = 50
    decode_redo_tokens: int = 10
    process_windows: Mapping[str, float] = field(default_factory=dict)


class VerifierContractError(RuntimeError):
    """A verifier answered out of contract (wrong count, score outside [0, 1])."""


class VerifiersUnavailableError(RuntimeError):
    """Every verifier a scoring step needs has failed, so the search cannot rank its candidates."""


class SearchRun:
    def __init__(
        self,
        config: SearchConfig,
        stages: Stages,
        prompt_ids: Sequence[int],
        context: ScoreContext,
        reference_codes: Sequence[int] = (),
        on_step: Callable[[StepEvent], Awaitable[None] | None] | None = None,
        on_audio: Callable[[np.ndarray], Awaitable[None] | None] | None = None,
    ):
        self.config = config
        self.stages = stages
        self.prompt_ids = tuple(prompt_ids)
        self.context = context
        self.reference_codes = list(reference_codes)
        self.on_step = on_step
        self.on_audio = on_audio
        self.streamed = 0  # samples of the final audio already handed to on_audio
        self.session_id = uuid.uuid4().hex
        self.max_total_tokens = config.max_total_tokens
        if config.max_new_tokens is not None:
            self.max_total_tokens = min(self.max_total_tokens, len(self.prompt_ids) + config.max_new_tokens)
        self.account = ComputeAccount()
        self.steps = 0
        self._reported_finished: set[int] = set()  # finished ids a step event already listed
        self.verifiers_used: list[str] = []
        self.verifiers_failed: dict[str, str] = {}
        self._next_id = 0
        self._started = time.perf_counter()

    # LM -----------------------------------------------------------------------------------
    async def start(self, n: int, max_new_tokens: int | None) -> list[Candidate]:
        """Sample n fresh candidates from the prompt (prefilled once)."""
        request = self._request(num_candidates=n, parents=None, max_new_tokens=max_new_tokens)
        return await self._generate(request, [None] * n)

    async def extend(self, parents: Sequence[Candidate], max_new_tokens: int | None) -> list[Candidate]:
        """Continue each parent (a parent listed k times is forked k ways)."""
        request = self._request(
            num_candidates=len(parents), parents=tuple(p.row for p in parents), max_new_tokens=max_new_tokens
        )
        return await self._generate(request, list(parents))

    def _request(self, **kwargs) -> GenerateRequest:
        return GenerateRequest(
            session_id=self.session_id,
            prompt_ids=self.prompt_ids,
            max_total_tokens=self.max_total_tokens,
            sampling=self.config.sampling,
            seed=self.config.seed,
            **kwargs,
        )

    async def _generate(self, request: GenerateRequest, parents: list[Candidate | None]) -> list[Candidate]:
        started = time.perf_counter()
        result = await self.stages.lm.generate(request)
        self.account.lm.seconds += time.perf_counter() - started
        self.account.lm.calls += 1
        self.account.lm.items += len(parents)
        self.account.lm_prefill_tokens += result.prefill_tokens
        self.account.lm_generated_tokens += result.generated_tokens
        children = []
        for row, (parent, cont) in enumerate(zip(parents, result.continuations)):
            child = Candidate(
                id=self._next_id,
                codes=(parent.codes if parent else []) + list(cont.codes),
                group=parent.group if parent else 0,
                parent=parent.id if parent else None,
                row=row,
                finished=cont.finished,
                truncated=cont.truncated,
                step_scores=list(parent.step_scores) if parent else [],
                audio=parent.audio if parent else None,  # a fork starts from its parent's audio
                audio_codes=parent.audio_codes if parent else 0,
            )
            self._next_id += 1
            children.append(child)
        return children

    async def release(self) -> None:
        await self.stages.lm.release(self.session_id)

    # Codec and verifiers ---------------------------------------------------------------------
    async def decode(self, candidates: Sequence[Candidate]) -> None:
        """Bring every candidate's audio up to its codes (one batched codec call).

        Only the codes decoded for no one yet are new: each goes to the codec with a bounded
        window of the codes before it as left context (with a reference voice, the first window's
        context is the end of the reference's codes, as the Llasa model card decodes reference +
        candidate), and the new audio is joined to the candidate's cached audio. The work per step
        is bounded, whatever the length so far.
        """
        for c in candidates:
            if c.audio is None:
                c.audio, c.audio_codes = np.zeros(0, dtype=np.float32), 0
        stale = [c for c in candidates if c.audio_codes != len(c.codes)]
        if not stale:
            return
        spt, window_tokens = self.stages.samples_per_token, self.stages.decode_context_tokens
        windows, plans = [], []
        for c in stale:
            done = c.audio_codes
            own = c.codes[max(0, done - window_tokens) : done]
            short = window_tokens - len(own)
            borrowed = self.reference_codes[-short:] if short > 0 else []
            windows.append(borrowed + own + c.codes[done:])
            plans.append((len(c.codes) - done, min(self.stages.decode_redo_tokens, len(own)), len(borrowed) + len(own)))
        started = time.perf_counter()
        waves = await self.stages.codec.decode(windows)
        self.account.codec.seconds += time.perf_counter() - started
        self.account.codec.calls += 1
        self.account.codec.items += len(stale)
        self.account.codec.audio_seconds += sum(new for new, _, _ in plans) * spt / self.stages.sample_rate
        self.account.codec.context_seconds += sum(ctx for _, _, ctx in plans) * spt / self.stages.sample_rate
        for candidate, wave, (new, redo, _) in zip(stale, waves, plans):
            candidate.audio = continue_audio(candidate.audio, wave, new, spt, redo)
            candidate.audio_codes = len(candidate.codes)

    async def score(
        self, candidates: Sequence[Candidate], weights: Mapping[str, float], windows: Mapping[str, float] | None = None
    ) -> list[dict[str, VerifierScore]]:
        """Decode, then ask every named verifier about every candidate, verifiers concurrently;
        a verifier named in `windows` hears only that many trailing seconds of each candidate."""
        await self.decode(candidates)
        names = [name for name in weights if name not in self.verifiers_failed]
        verdicts = await asyncio.gather(*(self._score_or_drop(name, candidates, (windows or {}).get(name)) for name in names))
        alive = {name: v for name, v in zip(names, verdicts) if v is not None}
        if not alive:
            reasons = "; ".join(f"{name}: {self.verifiers_failed[name]}" for name in weights)
            raise VerifiersUnavailableError(f"no verifier of {sorted(weights)} could score ({reasons})")
        return [
            {name: alive[name][i] if name in alive else self._dropped(name) for name in weights}
            for i in range(len(candidates))
        ]

    def _dropped(self, name: str) -> VerifierScore:
        return VerifierScore(score=None, metric="", reason=f"verifier failed: {self.verifiers_failed[name]}")

    async def _score_or_drop(self, name: str, candidates: Sequence[Candidate],
                             window: float | None) -> list[VerifierScore] | None:
        """The verifier's scores; with allow_partial_verifiers a failure drops the verifier for the
        rest of the search (None) instead of failing it."""
        if not self.config.allow_partial_verifiers:
            return await self._score_with(name, candidates, window)
        try:
            return await self._score_with(name, candidates, window)
        except Exception as err:  # noqa: BLE001  (cancellation is not an Exception and still propagates)
            text = str(err).strip()
            self.verifiers_failed[name] = f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"[:300]
            return None

    async def _score_with(self, name: str, candidates: Sequence[Candidate],
                          window: float | None) -> list[VerifierScore]:
        keep = int(window * self.stages.sample_rate) if window else 0
        waves = [c.audio[-keep:] if keep else c.audio for c in candidates]
        started = time.perf_counter()
        scores = await self.stages.verifiers[name].score(waves, [self.context] * len(waves))
        if name not in self.verifiers_used:
            self.verifiers_used.append(name)
        account = self.account.verifier(name)
        account.seconds += time.perf_counter() - started
        account.calls += 1
        account.items += len(waves)
        account.audio_seconds += sum(len(w) for w in waves) / self.stages.sample_rate
        if len(scores) != len(waves):
            raise VerifierContractError(f"verifier {name!r} returned {len(scores)} scores for {len(waves)} items")
        for verdict in scores:
            if verdict.score is not None and not 0.0 <= verdict.score <= 1.0:
                raise VerifierContractError(f"verifier {name!r} returned score {verdict.score} outside [0, 1]")
        return scores

    async def score_process(self, candidates: Sequence[Candidate], partial: bool = True) -> None:
        """Append this step's combined process score to each candidate's history (none when
        there is nothing to choose). A partial candidate gets the stages' process windows; a
        finished one is heard whole."""
        if not self.config.runs_verifiers:
            return
        weights = self.config.process_verifiers
        windows = self.stages.process_windows if partial else None
        for candidate, verdicts in zip(candidates, await self.score(candidates, weights, windows)):
            candidate.process_scores = verdicts
            step_score = combine(verdicts, weights)
            candidate.step_scores.append(0.0 if step_score is None else step_score)

    async def score_final(self, candidates: Sequence[Candidate]) -> None:
        """Score finished candidates for the final choice (outcome verifiers, else process), each
        candidate once: the strategies call this once, with every finished candidate."""
        if not (self.config.final_verifiers and self.config.runs_verifiers):
            await self.decode(candidates)
            return
        if self.config.outcome_verifiers:
            weights = self.config.outcome_verifiers
            for candidate, verdicts in zip(candidates, await self.score(candidates, weights)):
                candidate.outcome_scores = verdicts
                candidate.final_score = combine(verdicts, weights)
        else:
            await self.score_process(candidates, partial=False)
            for candidate in candidates:
                candidate.final_score = self.process_score(candidate)

    def process_score(self, candidate: Candidate) -> float:
        return aggregate(candidate.step_scores, self.config.aggregation)

    # Streamed audio --------------------------------------------------------------------------
    def settled_samples(self, candidate: Candidate) -> int:
        """How many of the candidate's audio samples no later decode (of it or of a descendant) can
        change: all but the last `decode_redo_tokens` codes' audio and the crossfade before them."""
        if candidate.audio is None:
            return 0
        if candidate.finished and candidate.audio_codes == len(candidate.codes):
            return len(candidate.audio)
        unsettled = self.stages.decode_redo_tokens * self.stages.samples_per_token + CROSSFADE_SAMPLES
        return max(0, len(candidate.audio) - unsettled)

    async def commit(self, pool: Sequence[Candidate]) -> None:
        """Stream the committed prefix: the audio every candidate that may still be chosen (or
        have the chosen one as a descendant) shares, sample for sample, and will not change."""
        if self.on_audio is None or not pool:
            return
        bound = min(self.settled_samples(c) for c in pool)
        if bound <= self.streamed:
            return
        first = pool[0].audio
        for other in pool[1:]:
            differ = np.flatnonzero(first[self.streamed : bound] != other.audio[self.streamed : bound])
            if len(differ):
                bound = self.streamed + int(differ[0])
        await self._emit(first[self.streamed : bound])

    async def _emit(self, audio: np.ndarray) -> None:
        if not len(audio):
            return
        if self.account.first_audio_seconds is None:
            self.account.first_audio_seconds = time.perf_counter() - self._started
        self.streamed += len(audio)
        maybe_awaitable = self.on_audio(np.array(audio, dtype=np.float32))
        if maybe_awaitable is not None:
            await maybe_awaitable

    async def flush(self, chosen: Candidate) -> None:
        """Stream the rest of the chosen audio: the chunks joined are the chosen audio."""
        if self.on_audio is not None and chosen.audio is not None:
            await self._emit(chosen.audio[self.streamed :])

    # Progress and result -----------------------------------------------------------------------
    async def report(self, live: Sequence[Candidate], finished: Sequence[Candidate],
                     kept: Sequence[Candidate] | None = None) -> None:
        """`kept`: the live candidates selected for expansion (None: all of them go on)."""
        self.steps += 1
        # A pruned candidate can no longer be chosen: only the kept and the finished bound the prefix.
        await self.commit(list(live if kept is None else kept) + list(finished))
        if self.on_step is None:
            return
        scored = [self.process_score(c) for c in live if c.step_scores]
        kept_ids = {c.id for c in (live if kept is None else kept)}
        fresh = [c for c in finished if c.id not in self._reported_finished]
        self._reported_finished.update(c.id for c in fresh)
        event = StepEvent(
            step=self.steps,
            live=len(live),
            finished=len(finished),
            best_score=max(scored) if scored else None,
            lm_generated_tokens=self.account.lm_generated_tokens,
            candidates=tuple(
                [StepCandidate(c.id, c.parent, c.group, self.process_score(c) if c.step_scores else None,
                               kept=c.id in kept_ids, finished=False) for c in live]
                + [StepCandidate(c.id, c.parent, c.group,
                                 c.final_score if c.final_score is not None
                                 else (self.process_score(c) if c.step_scores else None),
                                 kept=False, finished=True) for c in fresh]),
        )
        maybe_awaitable = self.on_step(event)
        if maybe_awaitable is not None:
            await maybe_awaitable

    def result(self, finished: Sequence[Candidate]) -> SearchResult:
        """Choose the best finished candidate (ties: the earliest sampled)."""
        chosen = max(finished, key=lambda c: (c.final_score if c.final_score is not None else -1.0, -c.id))
        self.account.wall_seconds = time.perf_counter() - self._started
        return SearchResult(
            strategy=self.config.strategy,
            chosen=chosen,
            candidates=list(finished),
            account=self.account,
            steps=self.steps,
            verifiers_used=list(self.verifiers_used),
            verifiers_failed=dict(self.verifiers_failed),
        )
