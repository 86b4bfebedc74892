import asyncio

import numpy as np
import pytest
from pydantic import ValidationError

from llasa_core.engine import LlasaTTS
from llasa_core.search import SearchConfig, SearchConfigError, beam, dvts
from llasa_core.search.result import Candidate
from llasa_core.search.run import VerifierContractError
from llasa_core.search.scoring import aggregate, combine
from llasa_core.stages import VerifierScore

NEW_TOKENS = 60  # three steps of 20 tokens; the tiny random LM practically never ends by itself


class Loudness:
    """Test verifier: prefers louder audio. Deterministic, so its choice can be recomputed."""

    name = "loud"

    def __init__(self):
        self.calls = 0

    @staticmethod
    def value(wave: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(wave**2))) if len(wave) else 0.0
        return rms / (rms + 0.01)

    def score(self, waveforms, contexts):
        self.calls += 1
        return [VerifierScore(score=self.value(w), metric="rms") for w in waveforms]


class Quietness(Loudness):
    name = "quiet"

    def score(self, waveforms, contexts):
        return [VerifierScore(score=1 - self.value(w), metric="rms") for w in waveforms]


class NeedsReference:
    """Applies only with a reference voice, like speaker similarity."""

    def score(self, waveforms, contexts):
        return [
            VerifierScore(score=0.5, metric="cos") if c.reference_audio is not None
            else VerifierScore(score=None, metric="cos", reason="no reference voice")
            for w, c in zip(waveforms, contexts)
        ]


@pytest.fixture(scope="module")
def loud():
    return Loudness()


@pytest.fixture(scope="module")
def engine(tiny_lm, tiny_codec, loud):
    return LlasaTTS(tiny_lm, tiny_codec, {"loud": loud, "quiet": Quietness(), "ref": NeedsReference()})


@pytest.fixture(scope="module")
def prompt_length(tiny_lm):
    return len(tiny_lm.prompt_ids("Search me."))


def config(prompt_length, **kwargs):
    kwargs.setdefault("step_tokens", 20)
    kwargs.setdefault("seed", 3)
    return SearchConfig(max_new_tokens=NEW_TOKENS, **kwargs)


def synthesize(engine, cfg, **kwargs):
    return asyncio.run(engine.synthesize("Search me.", cfg, **kwargs))


STRATEGIES = {
    "best_of_n": dict(strategy="best_of_n", n=4, outcome_verifiers={"loud": 1.0}),
    "beam": dict(strategy="beam", n=4, beam_width=2, process_verifiers={"loud": 1.0}),
    "dvts": dict(strategy="dvts", n=4, beam_width=2, process_verifiers={"loud": 1.0}),
    "prm_orm": dict(strategy="prm_orm", n=4, beam_width=2, prm_steps=1,
                    process_verifiers={"quiet": 1.0}, outcome_verifiers={"loud": 1.0}),
}


@pytest.mark.parametrize("name", STRATEGIES)
def test_each_strategy_returns_the_candidate_the_verifier_prefers(engine, prompt_length, name):
    result = synthesize(engine, config(prompt_length, **STRATEGIES[name]))
    assert len(result.candidates) >= 4
    recomputed = [Loudness.value(c.audio) for c in result.candidates]
    assert result.chosen is result.candidates[int(np.argmax(recomputed))]
    assert result.chosen.final_score == pytest.approx(max(recomputed), abs=1e-6)
    assert len(set(tuple(c.codes) for c in result.candidates)) == len(result.candidates)
    assert all(len(c.codes) == NEW_TOKENS for c in result.candidates)
    assert len(result.chosen.audio) == NEW_TOKENS * 320


@pytest.mark.parametrize("name", ["beam", "dvts", "prm_orm"])
def test_tree_searches_prefill_the_prompt_once(engine, prompt_length, name):
    result = synthesize(engine, config(prompt_length, **STRATEGIES[name]))
    account = result.account
    assert account.lm_prefill_tokens == prompt_length
    # every sampled token is accounted once: 4 live candidates x 60 tokens
    assert account.lm_generated_tokens == 4 * NEW_TOKENS
    assert account.lm.calls == 3  # first chunk, one steered step, then the last chunk (prm_orm: to the end)
    assert account.codec.calls >= 1 and account.codec.audio_seconds > 0
    assert account.verifiers["loud"].calls >= 1


def test_best_of_n_is_one_lm_batch(engine, prompt_length):
    result = synthesize(engine, config(prompt_length, **STRATEGIES["best_of_n"]))
    assert result.account.lm.calls == 1 and result.account.lm.items == 4
    assert result.account.lm_prefill_tokens == prompt_length
    assert result.account.codec.calls == 1 and result.account.codec.items == 4
    assert result.account.verifiers["loud"].items == 4


def test_same_seed_same_answer(engine, prompt_length):
    cfg = config(prompt_length, **STRATEGIES["beam"])
    assert synthesize(engine, cfg).chosen.codes == synthesize(engine, cfg).chosen.codes


def test_dvts_keeps_every_subtree_alive(engine, prompt_length):
    result = synthesize(engine, config(prompt_length, strategy="dvts", n=6, beam_width=2,
                                       process_verifiers={"loud": 1.0}))
    assert sorted({c.group for c in result.candidates}) == [0, 1, 2]
    assert len(result.candidates) == 6


def test_progress_events_arrive_per_step(engine, prompt_length):
    events = []
    synthesize(engine, config(prompt_length, **STRATEGIES["beam"]), on_step=events.append)
    assert [e.step for e in events] == [1, 2]
    assert all(e.best_score is not None and 0 <= e.best_score <= 1 for e in events)
    assert events[0].lm_generated_tokens < events[1].lm_generated_tokens


def test_step_events_list_kept_and_pruned_candidates_that_grow_the_tree(engine, prompt_length):
    events = []
    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, step_tokens=20, seed=3, max_new_tokens=80,
                       process_verifiers={"loud": 1.0})  # four steps: three steered
    result = synthesize(engine, cfg, on_step=events.append)
    assert len(events) == 3
    for event in events:
        assert len(event.candidates) == event.live == 4
        kept = [c for c in event.candidates if c.kept]
        assert len(kept) == 2  # n / beam_width
        assert all(c.score is not None for c in event.candidates)
        assert min(c.score for c in kept) >= max(c.score for c in event.candidates if not c.kept)
    pruned = {c.id for e in events for c in e.candidates if not c.kept}
    for before, after in zip(events, events[1:]):
        assert {c.parent for c in after.candidates} == {c.id for c in before.candidates if c.kept}
    parents = {c.parent for e in events for c in e.candidates} | {c.parent for c in result.candidates}
    assert pruned and not pruned & parents
    assert {c.parent for c in result.candidates} == {c.id for c in events[-1].candidates if c.kept}


def test_best_of_n_step_event_lists_every_candidate_finished_with_its_final_score(engine, prompt_length):
    events = []
    result = synthesize(engine, config(prompt_length, **STRATEGIES["best_of_n"]), on_step=events.append)
    listed = [c for e in events for c in e.candidates]
    assert sorted(c.id for c in listed) == sorted(c.id for c in result.candidates)
    assert all(c.finished and not c.kept for c in listed)
    assert {c.id: c.score for c in listed} == {c.id: c.final_score for c in result.candidates}


def test_reference_voice_is_in_the_prompt_and_cut_from_the_output(engine, prompt_length):
    reference = (0.2 * np.sin(np.arange(16_000) * 0.05)).astype(np.float32)
    extra = 50 + len(b"Ref. ")  # 1 s of reference codes, and its transcript before the text
    result = synthesize(engine, config(prompt_length, **STRATEGIES["best_of_n"]),
                        reference_audio=reference, reference_text="Ref.")
    assert result.account.lm_prefill_tokens == prompt_length + extra
    assert len(result.chosen.audio) == len(result.chosen.codes) * 320  # reference audio cut
    # one codec pass decodes the end of the reference (the window's left context) + the candidate,
    # as the model card decodes reference + candidate; only the candidate's audio is new
    assert result.account.codec.calls == 1
    assert result.account.codec.audio_seconds == pytest.approx(4 * NEW_TOKENS / 50)
    assert result.account.codec.context_seconds == pytest.approx(4 * 50 / 50)


def test_verifier_without_reference_is_skipped_not_scored(engine, prompt_length):
    result = synthesize(engine, config(prompt_length, strategy="best_of_n", n=2,
                                       outcome_verifiers={"loud": 1.0, "ref": 3.0}))
    for candidate in result.candidates:
        assert candidate.outcome_scores["ref"].score is None
        assert candidate.outcome_scores["ref"].reason == "no reference voice"
        assert candidate.final_score == pytest.approx(Loudness.value(candidate.audio), abs=1e-6)


def test_max_total_tokens_caps_prompt_plus_speech(engine, prompt_length):
    cfg = SearchConfig(max_total_tokens=prompt_length + 7, max_new_tokens=100, seed=1)
    result = synthesize(engine, cfg)
    assert len(result.chosen.codes) == 7 and result.chosen.truncated


def test_bad_configs_fail_with_a_clear_message(engine):
    with pytest.raises(ValidationError, match=r"n \(6\) must be a multiple of beam_width \(4\)"):
        SearchConfig(strategy="beam", n=6, beam_width=4, process_verifiers={"loud": 1})
    with pytest.raises(ValidationError, match="n\n.*greater than or equal to 1"):
        SearchConfig(n=0)
    with pytest.raises(ValidationError, match="needs at least one process verifier"):
        SearchConfig(strategy="dvts", n=4, beam_width=2)
    with pytest.raises(ValidationError, match="needs a verifier to choose"):
        SearchConfig(n=4)
    with pytest.raises(ValidationError, match="weights must be positive"):
        SearchConfig(n=2, outcome_verifiers={"loud": 0})
    with pytest.raises(SearchConfigError, match=r"unknown verifier\(s\) \['wer'\]; this server has \['loud', 'quiet', 'ref'\]"):
        asyncio.run(engine.synthesize("x", SearchConfig(n=2, outcome_verifiers={"wer": 1.0})))


def test_a_verifier_out_of_contract_is_reported(tiny_lm, tiny_codec, prompt_length):
    class Broken:
        def score(self, waveforms, contexts):
            return [VerifierScore(score=1.5, metric="x") for _ in waveforms]

    engine = LlasaTTS(tiny_lm, tiny_codec, {"broken": Broken()})
    with pytest.raises(VerifierContractError, match="outside \\[0, 1\\]"):
        synthesize(engine, config(prompt_length, n=2, outcome_verifiers={"broken": 1.0}))


def candidates_with(scores_by_group):
    out = []
    for group, scores in scores_by_group.items():
        for s in scores:
            out.append(Candidate(id=len(out), codes=[], group=group, step_scores=[s]))
    return out


class FakeRun:
    def __init__(self, n, beam_width):
        self.config = SearchConfig(strategy="beam", n=n, beam_width=beam_width, process_verifiers={"v": 1})

    def process_score(self, candidate):
        return aggregate(candidate.step_scores, "last")


def test_beam_keeps_the_best_n_over_m_overall():
    live = candidates_with({0: [0.1, 0.9, 0.5, 0.7, 0.2, 0.8]})
    kept = beam.select(FakeRun(n=6, beam_width=2), live)
    assert [c.step_scores[0] for c in kept] == [0.9, 0.8, 0.7]


def test_dvts_keeps_the_best_of_each_subtree():
    live = candidates_with({0: [0.1, 0.2], 1: [0.9, 0.8], 2: [0.3, 0.05]})
    kept = dvts.select(FakeRun(n=6, beam_width=2), live)
    assert [c.step_scores[0] for c in kept] == [0.2, 0.9, 0.3]


def test_aggregation_over_steps():
    history = [0.9, 0.5, 0.8]
    assert aggregate(history, "last") == 0.8
    assert aggregate(history, "min") == 0.5
    assert aggregate(history, "mean") == pytest.approx(2.2 / 3)
    assert aggregate(history, "prod") == pytest.approx(0.36)


def test_weighted_combination_renormalises_over_verifiers_that_scored():
    scores = {
        "wer": VerifierScore(score=0.9, metric="wer", raw=0.1),
        "sim": VerifierScore(score=0.6, metric="cosine", raw=0.2),
        "emo": VerifierScore(score=None, metric="cosine", reason="no reference voice"),
    }
    assert combine(scores, {"wer": 2.0, "sim": 1.0}) == pytest.approx((1.8 + 0.6) / 3)
    assert combine(scores, {"wer": 1.0, "emo": 5.0}) == pytest.approx(0.9)
    assert combine(scores, {"emo": 1.0}) is None


# Compute follows the LM: audio decoded once, verifiers only where they choose -------------------
class Recording(Loudness):
    """Loudness that remembers the length of every clip it heard."""

    name = "recording"

    def __init__(self):
        super().__init__()
        self.lengths: list[int] = []

    def score(self, waveforms, contexts):
        self.lengths += [len(w) for w in waveforms]
        return super().score(waveforms, contexts)


def test_every_sampled_token_is_decoded_once(engine, prompt_length):
    """Beam n=4 M=2, three steps of 20: re-decoding each prefix would be 4 x (20 + 40 + 60) tokens
    of new audio; decoding each step's new codes once is 4 x 60, whatever the forks."""
    result = synthesize(engine, config(prompt_length, **STRATEGIES["beam"]))
    codec = result.account.codec
    assert codec.audio_seconds == pytest.approx(result.account.lm_generated_tokens / 50) == 4 * NEW_TOKENS / 50
    assert codec.calls == 3 and codec.items == 12
    assert codec.context_seconds == pytest.approx(4 * (20 + 40) / 50)  # the window holds whole earlier steps
    assert len(result.chosen.audio) == len(result.chosen.codes) * 320


def test_a_fork_starts_from_its_parents_audio(engine, prompt_length):
    from llasa_core.search import SearchRun
    from llasa_core.stages import ScoreContext

    async def fork():
        cfg = config(prompt_length, strategy="beam", n=2, beam_width=2, process_verifiers={"loud": 1.0})
        run = SearchRun(cfg, engine.stages, engine.lm.prompt_ids("Search me."), ScoreContext(text="Search me."))
        try:
            (parent, _) = await run.start(2, max_new_tokens=20)
            await run.decode([parent])
            decoded = run.account.codec.audio_seconds
            children = await run.extend([parent, parent], max_new_tokens=20)
            assert all(c.audio is parent.audio for c in children)  # inherited, not decoded
            await run.decode(children)
            return parent, children, run.account.codec.audio_seconds - decoded
        finally:
            await run.release()

    parent, children, new_seconds = asyncio.run(fork())
    assert new_seconds == pytest.approx(2 * 20 / 50)  # only the children's own 20 tokens each
    seam = len(parent.audio) - engine.stages.decode_redo_tokens * 320 - 160  # redone codes, crossfade
    for child in children:
        assert child.codes[:20] == parent.codes and len(child.audio) == 40 * 320
        np.testing.assert_array_equal(child.audio[:seam], parent.audio[:seam])


def test_n1_runs_no_verifier_unless_scores_are_asked_for(engine, prompt_length):
    recording = Recording()
    tts = LlasaTTS(engine.lm, engine.codec, {"recording": recording})
    plain = synthesize(tts, config(prompt_length, n=1, outcome_verifiers={"recording": 1.0}))
    assert recording.calls == 0 and plain.verifiers_used == [] and plain.chosen.final_score is None
    assert len(plain.chosen.audio) == len(plain.chosen.codes) * 320
    scored = synthesize(tts, config(prompt_length, n=1, outcome_verifiers={"recording": 1.0}, return_scores=True))
    assert recording.calls == 1 and scored.verifiers_used == ["recording"]
    assert scored.chosen.outcome_scores["recording"].score is not None


def test_process_verifiers_hear_their_window_and_outcome_verifiers_each_candidate_once(engine, prompt_length):
    recording, outcome = Recording(), Recording()
    tts = LlasaTTS(engine.lm, engine.codec, {"recording": recording, "outcome": outcome})
    tts.stages.process_windows = {"recording": 0.5}
    result = synthesize(tts, config(prompt_length, strategy="beam", n=4, beam_width=2, step_tokens=10,
                                    process_verifiers={"recording": 1.0}, outcome_verifiers={"outcome": 1.0}))
    assert recording.lengths and max(recording.lengths) == 8_000  # 0.5 s, though prefixes grow to 1 s
    assert outcome.calls == 1 and sorted(outcome.lengths) == sorted(len(c.audio) for c in result.candidates)
    assert result.account.verifiers["outcome"].items == len(result.candidates)
