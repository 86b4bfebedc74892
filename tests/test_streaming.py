"""Issue 14: audio as it is made. The search hands over audio chunks as soon as they are fixed;
the chunks joined are the chosen audio, sample for sample (tiny random checkpoints, real stages)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from llasa_core.engine import LlasaTTS
from llasa_core.search import SearchConfig, run_search
from llasa_core.stages import ScoreContext, VerifierScore

TEXT = "Stream me."


class Loudness:
    """Prefers louder audio: deterministic, so the tree's choices are repeatable."""

    def score(self, waveforms, contexts):
        out = []
        for wave in waveforms:
            rms = float(np.sqrt(np.mean(wave**2))) if len(wave) else 0.0
            out.append(VerifierScore(score=rms / (rms + 0.01), metric="rms"))
        return out


@pytest.fixture(scope="module")
def engine(tiny_lm, tiny_codec):
    return LlasaTTS(tiny_lm, tiny_codec, {"loud": Loudness()})


def stream(engine, **options):
    """(chunks, result, log): the log records, in order, each LM call and each chunk."""
    chunks, log = [], []
    lm = engine.stages.lm
    generate = lm.generate

    async def logged_generate(request):
        log.append("lm")
        return await generate(request)

    def on_audio(chunk):
        chunks.append(chunk)
        log.append("audio")

    options.setdefault("seed", 5)
    config = SearchConfig(max_new_tokens=options.pop("max_new_tokens", 100), **options)
    lm.generate = logged_generate
    try:
        result = asyncio.run(run_search(config, engine.stages, engine.lm.prompt_ids(TEXT), ScoreContext(text=TEXT),
                                        on_audio=on_audio))
    finally:
        del lm.generate
    return chunks, result, log


def test_n1_streams_each_step_and_the_chunks_are_the_final_audio(engine):
    chunks, result, log = stream(engine, n=1, step_tokens=20)
    np.testing.assert_array_equal(np.concatenate(chunks), result.chosen.audio)
    assert len(result.chosen.audio) == 100 * 320
    assert log.count("lm") == 5 and log.index("audio") < log.index("lm", 2)  # audio after the first step's LM call
    assert len(chunks) >= 4 and all(len(c) for c in chunks)
    assert 0 < result.account.first_audio_seconds < result.account.wall_seconds


def test_beam_streams_the_committed_prefix_before_the_search_ends(engine):
    """beam_width = n keeps one parent, so every live candidate shares it: its settled audio is
    committed at each step, long before the final choice."""
    chunks, result, log = stream(engine, strategy="beam", n=4, beam_width=4, step_tokens=20,
                                 process_verifiers={"loud": 1.0})
    np.testing.assert_array_equal(np.concatenate(chunks), result.chosen.audio)
    last_lm = len(log) - 1 - log[::-1].index("lm")
    assert log.index("audio") < last_lm and len(chunks) >= 3


@pytest.mark.parametrize("options", [
    dict(strategy="beam", n=4, beam_width=2, process_verifiers={"loud": 1.0}),
    dict(strategy="dvts", n=4, beam_width=2, process_verifiers={"loud": 1.0}),
    dict(strategy="prm_orm", n=4, beam_width=2, prm_steps=2, process_verifiers={"loud": 1.0},
         outcome_verifiers={"loud": 1.0}),
    dict(strategy="best_of_n", n=3, outcome_verifiers={"loud": 1.0}),
], ids=lambda o: o["strategy"])
def test_every_strategy_streams_exactly_its_chosen_audio(engine, options):
    chunks, result, _ = stream(engine, step_tokens=20, **options)
    np.testing.assert_array_equal(np.concatenate(chunks), result.chosen.audio)
    if options["strategy"] == "best_of_n":
        assert len(chunks) == 1  # after the choice


def test_without_a_listener_nothing_changes(engine):
    """n = 1 generates in one LM call when no one listens."""
    chunks, streamed, log = stream(engine, n=1, step_tokens=20)
    plain = asyncio.run(run_search(SearchConfig(max_new_tokens=100, n=1, step_tokens=20, seed=5), engine.stages,
                                   engine.lm.prompt_ids(TEXT), ScoreContext(text=TEXT)))
    assert plain.account.lm.calls == 1 and plain.account.first_audio_seconds is None
    assert streamed.account.lm.calls == 5
