"""Search metrics for Prometheus, through Ray Serve's metrics API (exported by every node's Ray
metrics agent with the deployment, replica and application as extra tags).

Ray's own metrics count requests and replicas; these say what each search cost and found.
Names get Ray's `ray_` prefix on the wire (e.g. `ray_llasa_searches_total`).
"""

from __future__ import annotations

from ray.serve import metrics

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
                                             "request in -> first audio bytes ready (streamed pcm: the first "
                                             "fixed chunk; a file format: the whole file)",
                                             boundaries=SECONDS_BUCKETS, tag_keys=("api",))

    def record(self, outcome: SynthesisOutcome, n: int, first_audio_seconds: float, api: str) -> None:
        result, account = outcome.result, outcome.result.account
        self.searches.inc(tags={"strategy": result.strategy, "n": str(n), "api": api})
        _add(self.candidates, len(result.candidates), {"strategy": result.strategy})
        _add(self.lm_tokens, account.lm_prefill_tokens, {"kind": "prefill"})
        _add(self.lm_tokens, account.lm_generated_tokens, {"kind": "generated"})
        self.stage_seconds.observe(account.lm.seconds, tags={"stage": "lm"})
        self.stage_seconds.observe(account.codec.seconds, tags={"stage": "codec"})
        for name, stage in account.verifiers.items():
            self.stage_seconds.observe(stage.seconds, tags={"stage": f"verifier:{name}"})
        if result.chosen.final_score is not None:
            self.chosen_score.observe(result.chosen.final_score, tags={"strategy": result.strategy})
        self.first_audio.observe(first_audio_seconds, tags={"api": api})

    def failed(self, status: int, api: str) -> None:
        self.failures.inc(tags={"status": str(status), "api": api})


def _add(counter: metrics.Counter, value: float, tags: dict) -> None:
    if value > 0:  # Ray's counters refuse increments of 0
        counter.inc(value, tags=tags)
