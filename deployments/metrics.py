"""Search metrics for Prometheus, through Ray Serve's metrics API (exported by every node's Ray
metrics agent with the deployment, replica and application as extra tags).

Ray's own metrics count requests and replicas; these say what each search cost and found.
Names get Ray's `ray_` prefix on the wire (e.g. `ray_llasa_searches_total`).
"""

from __future__ import annotations

from ray.serve import metrics

from protos.llasa.tts.v1 import tts_pb2 as pb

from .orchestrator import SynthesisOutcome

SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600]
SCORE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]


class SearchMetrics:
    """One set per ingress replica; `record` takes what a finished search reports."""

    def __init__(self):
        self.searches = metrics.Counter("llasa_searches_total", "searches finished, by strategy and N",
                                        tag_keys=("strategy", "n", "api"))
        self.failures = metrics.Counter("llasa_search_failures_total", "searches that failed, by HTTP status",
                                        tag_keys=("status", "api"))
        self.candidates = metrics.Counter("llasa_candidates_total", "finished candidates scored, by strategy",
                                          tag_keys=("strategy",))
        self.lm_tokens = metrics.Counter("llasa_lm_tokens_total", "LM tokens: prompt prefill and generated",
                                         tag_keys=("kind",))
        self.stage_seconds = metrics.Histogram("llasa_stage_seconds", "wall seconds one search spent in a stage "
                                               "(lm, codec, verifier:<name>), queueing included",
                                               boundaries=SECONDS_BUCKETS, tag_keys=("stage",))
        self.chosen_score = metrics.Histogram("llasa_chosen_score", "final score of the chosen candidate",
                                              boundaries=SCORE_BUCKETS, tag_keys=("strategy",))
        self.first_audio = metrics.Histogram("llasa_time_to_first_audio_seconds",
                                             "request in -> first audio bytes ready (streamed: the first fixed "
                                             "chunk; otherwise the whole file)",
                                             boundaries=SECONDS_BUCKETS, tag_keys=("api",))

    def record(self, outcome: SynthesisOutcome, n: int, first_audio_seconds: float, api: str) -> None:
        """A search the HTTP API ran, from the orchestrator's outcome."""
        result, account = outcome.result, outcome.result.account
        self._record(result.strategy, n, len(result.candidates), account.lm_prefill_tokens,
                     account.lm_generated_tokens,
                     {"lm": account.lm.seconds, "codec": account.codec.seconds,
                      **{f"verifier:{name}": a.seconds for name, a in account.verifiers.items()}},
                     result.chosen.final_score, first_audio_seconds, api)

    def record_response(self, response: pb.SynthesizeResponse, n: int) -> None:
        """A search the gRPC API ran, from its response."""
        account = response.account
        first_audio = response.timings.first_audio_seconds or response.timings.total_seconds
        self._record(response.strategy, n, len(response.candidates), account.lm_prefill_tokens,
                     account.lm_generated_tokens,
                     {"lm": account.lm.seconds, "codec": account.codec.seconds,
                      **{f"verifier:{name}": a.seconds for name, a in account.verifiers.items()}},
                     response.chosen.final_score if response.chosen.HasField("final_score") else None,
                     first_audio, "grpc")

    def _record(self, strategy: str, n: int, candidates: int, prefill: int, generated: int,
                stage_seconds: dict[str, float], chosen_score: float | None, first_audio: float, api: str) -> None:
        self.searches.inc(tags={"strategy": strategy, "n": str(n), "api": api})
        _add(self.candidates, candidates, {"strategy": strategy})
        _add(self.lm_tokens, prefill, {"kind": "prefill"})
        _add(self.lm_tokens, generated, {"kind": "generated"})
        for stage, seconds in stage_seconds.items():
            self.stage_seconds.observe(seconds, tags={"stage": stage})
        if chosen_score is not None:
            self.chosen_score.observe(chosen_score, tags={"strategy": strategy})
        self.first_audio.observe(first_audio, tags={"api": api})

    def failed(self, status: int, api: str) -> None:
        self.failures.inc(tags={"status": str(status), "api": api})


def _add(counter: metrics.Counter, value: float, tags: dict) -> None:
    if value > 0:  # Ray's counters refuse increments of 0
        counter.inc(value, tags=tags)
