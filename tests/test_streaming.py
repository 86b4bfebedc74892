"""Issue 14: audio as it is made. The search hands over audio chunks as soon as they are fixed;
the chunks joined are the chosen audio, sample for sample (tiny random checkpoints, real stages)."""

from __future__ import annotations

import asyncio
import time

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
    """beam_width = n keeps one parent of the n live candidates: the others are pruned and can no
    longer be chosen, so the kept one's settled audio is committed at once, before its children are
    sampled, and again at every step, long before the final choice."""
    chunks, result, log = stream(engine, strategy="beam", n=4, beam_width=4, step_tokens=20,
                                 process_verifiers={"loud": 1.0})
    np.testing.assert_array_equal(np.concatenate(chunks), result.chosen.audio)
    second_lm = log.index("lm", log.index("lm") + 1)
    assert log.index("audio") < second_lm and log[: log.index("lm", second_lm + 1)].count("audio") == 2
    assert len(chunks) >= 4


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
    """n = 1 generates in one LM call when no one listens; streamed, it samples the same codes from
    the same seed (the session's generator runs on across steps)."""
    chunks, streamed, log = stream(engine, n=1, step_tokens=20)
    plain = asyncio.run(run_search(SearchConfig(max_new_tokens=100, n=1, step_tokens=20, seed=5), engine.stages,
                                   engine.lm.prompt_ids(TEXT), ScoreContext(text=TEXT)))
    assert plain.account.lm.calls == 1 and plain.account.first_audio_seconds is None
    assert streamed.account.lm.calls == 5
    assert streamed.chosen.codes == plain.chosen.codes


# Through the service (tests/serve_support.py: Ray Serve, the gRPC proxy, every deployment) --------
def stream_events(service, text, options):
    from llasa_client import TTSClient

    with TTSClient(service.address) as client:
        return list(client.synthesize_stream(text, options))


@pytest.mark.parametrize("strategy", [dict(n=1), dict(strategy="beam", n=4, beam_width=4,
                                                      process_verifiers={"speaker": 1.0})],
                         ids=["n1", "beam"])
def test_service_streams_audio_chunks_that_join_into_the_result(service, strategy):
    from llasa_client import SynthesisOptions

    options = SynthesisOptions(max_speech_tokens=60, step_tokens=10, seed=7, output_format="f32", **strategy)
    events = stream_events(service, "Chunks as they come.", options)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1
    chunks = [e.audio for e in events if e.HasField("audio")]
    result = events[-1].result
    assert b"".join(c.pcm_f32le for c in chunks) == result.audio and len(result.audio) == 60 * 320 * 4
    starts = np.cumsum([0] + [len(c.pcm_f32le) // 4 for c in chunks[:-1]]) / 16_000
    np.testing.assert_allclose([c.start_seconds for c in chunks], starts)
    # audio flows during the search, not only after it: a chunk comes before the last step's progress
    assert len(chunks) >= 3 and kinds.index("audio") < len(kinds) - 1 - kinds[::-1].index("progress")
    first = chunks[0].elapsed_seconds
    assert result.timings.first_audio_seconds == pytest.approx(first)
    assert 0 < result.account.first_audio_seconds < result.account.search_seconds
    assert first < result.timings.total_seconds


def test_a_stream_that_sets_no_step_takes_the_stream_step(service):
    """serve_config.yaml: step_tokens 50, stream_step_tokens 25. A beam streamed without a step of its
    own steps by 25 (a tree commits audio sooner); the same request answered at once, or a stream
    that names its step, keeps that step (the tiny random LM never stops early: a beam of 100 tokens
    selects after every step but the last, 100 / step - 1 times)."""
    from llasa_client import SynthesisOptions, TTSClient

    defaults = service.config["applications"][0]["args"]["defaults"]
    assert (defaults["step_tokens"], defaults["stream_step_tokens"]) == (50, 25)
    options = dict(strategy="beam", n=2, beam_width=2, max_speech_tokens=100, seed=3,
                   process_verifiers={"speaker": 1.0})
    with TTSClient(service.address) as client:
        plain = client.synthesize("Step by step.", SynthesisOptions(**options))
        named = [e for e in client.synthesize_stream("Step by step.", SynthesisOptions(step_tokens=50, **options))]
    streamed = stream_events(service, "Step by step.", SynthesisOptions(**options))
    assert (plain.account.steps, named[-1].result.account.steps, streamed[-1].result.account.steps) == (1, 1, 3)


def test_cancelling_after_the_first_audio_stops_all_stage_work(service):
    """The client drops the stream once audio flows; every stage stops (counters as in
    tests/test_reliability.py)."""
    import grpc
    from serve_support import TEST_API_KEY
    from test_reliability import APP, slow, wait_quiet, work

    from llasa_client.client import build_request
    from protos.llasa.tts.v1 import tts_pb2_grpc

    start, _ = wait_quiet()
    channel = grpc.insecure_channel(service.address)
    call = tts_pb2_grpc.TTSServiceStub(channel).SynthesizeStream(
        build_request("Cancelled while it speaks.", slow(8.0)), metadata=(("application", APP), ("x-api-key", TEST_API_KEY)))
    chunks = 0
    for event in call:
        chunks += event.HasField("audio")
        if chunks == 2:
            call.cancel()
            break
    channel.close()
    after, settled = wait_quiet(limit=8.0 + 15)
    print(f"work stopped {settled:.1f} s after the cancel")
    assert chunks == 2 and after["LMSampler"][2] > start["LMSampler"][2] and after["LMSampler"][3] == 0
    time.sleep(3)
    assert work() == after


# Long texts (deployments/long_text.py, the orchestrator's chunked search) ----------------------------
PARAGRAPH = (
    "The weather turned cold just after sunset, and the streets of the old town grew quiet. "
    "Please remember to water the plants on Thursday, because the kitchen window gets the afternoon sun. "
    "Our train was delayed by almost twenty minutes, so we bought coffee and watched the platform fill up. "
    "She opened the window and listened to the rain falling on the roofs across the narrow lane. "
    "The museum closes early on public holidays, but the garden behind it stays open until dusk. "
    "My friend works as a teacher in Boston, and every summer she travels to the coast with her family. "
    "They rent a small house near the harbour, where the boats come in before dawn with the morning catch. "
    "In the evenings they walk along the beach, collect smooth stones, and talk about the year ahead. "
    "When the holiday ends, she returns to her classroom with new stories for her students. "
    "Nobody expected the bakery on the corner to close, yet it shut its doors last week after forty years."
)


def test_joiner_hands_out_exactly_the_joined_audio():
    from deployments.long_text import AudioJoiner

    rng = np.random.default_rng(0)
    parts = [[rng.standard_normal(n).astype(np.float32) for n in sizes] for sizes in ([500, 7, 300], [3, 90, 800], [50])]
    streamed, whole = [], []
    joiner, reference = AudioJoiner(streamed.append, fade=160), AudioJoiner(whole.append, fade=160)
    for chunk in parts:
        for piece in chunk:
            joiner.add(piece)
        joiner.end_chunk()
        reference.add(np.concatenate(chunk))
        reference.end_chunk()
    joiner.finish(), reference.finish()
    np.testing.assert_array_equal(np.concatenate(streamed), np.concatenate(whole))
    # the first join overlaps 160 samples; the last chunk is shorter than the fade and is kept whole
    assert len(np.concatenate(whole)) == sum(len(p) for chunk in parts for p in chunk) - 160


def test_plan_packs_sentences_and_refuses_what_cannot_fit():
    from deployments.long_text import TextTooLong, plan_chunks

    chunks = plan_chunks(PARAGRAPH, "en", lambda text: len(text) <= 220)
    assert " ".join(chunks) == PARAGRAPH and 5 <= len(chunks) <= 10 and all(len(c) <= 220 for c in chunks)
    assert plan_chunks("Short. Text.", "en", lambda text: True) == ["Short. Text."]
    with pytest.raises(TextTooLong, match="cannot be spoken"):
        plan_chunks("One fine sentence. " + "word " * 100, "en", lambda text: len(text) <= 200)


def test_a_chunk_without_its_own_cap_may_speak_twice_its_estimate():
    from deployments.long_text import MIN_SPEECH_TOKEN_CAP, speech_token_cap, speech_tokens_for

    sentence = "Please remember to water the plants on Thursday."  # 48 characters: 240 tokens estimated
    assert speech_token_cap(sentence, 500) == 480
    assert speech_token_cap(sentence, 300) == 300  # the default cap, when it is lower
    assert speech_token_cap("Excuse me.", 500) == MIN_SPEECH_TOKEN_CAP  # 50 estimated, but 2 s at least
    assert speech_token_cap(PARAGRAPH, 500) == speech_tokens_for(PARAGRAPH)  # never under the estimate
    assert speech_token_cap(PARAGRAPH, None) == 2 * speech_tokens_for(PARAGRAPH)
    # a number is said in words: "In 1984." needs at least as long as "In nineteen eighty-four."
    assert speech_tokens_for("In 1984.") >= speech_tokens_for("In nineteen eighty-four.")


@pytest.fixture(scope="module")
def demo_orchestrator():
    """The orchestrator's own class over in-process stages of the demo model (no Ray)."""
    from pathlib import Path

    from deployments.config import Limits
    from deployments.orchestrator import SearchOrchestrator
    from llasa_core.codec import load_codec
    from llasa_core.lm import TransformersLM
    from llasa_core.prompt import PromptBuilder

    model = Path(__file__).resolve().parents[1] / "models" / "llasa-demo"
    engine = LlasaTTS(TransformersLM(str(model / "lm"), quantize="int8"),  # as serve_config.yaml serves it
                      load_codec(str(model / "codec")), {})
    orchestrator = SearchOrchestrator.func_or_class.__new__(SearchOrchestrator.func_or_class)
    orchestrator.prompt_builder = PromptBuilder.from_pretrained(str(model / "lm"))
    orchestrator.stages, orchestrator._layout_known = engine.stages, True
    orchestrator.long_text_voice = "none"  # deployments/config.py LMArgs: the demo model's setting
    orchestrator.default_voice = None  # chunks without a reference, as `long_text_voice` is tested
    engine.stages.decode_context_tokens, engine.stages.decode_redo_tokens = 25, 10  # serve_config.yaml's
    return orchestrator, Limits()


def test_a_150_word_paragraph_is_spoken_whole_and_streamed_chunk_by_chunk(demo_orchestrator):
    from deployments.orchestrator import SynthesisJob

    orchestrator, limits = demo_orchestrator
    words = len(PARAGRAPH.split())
    assert words >= 150
    config = SearchConfig(n=1, step_tokens=50, seed=1, max_new_tokens=500, max_total_tokens=limits.max_total_tokens)
    chunks = []
    outcome = asyncio.run(orchestrator._search(SynthesisJob(text=PARAGRAPH, config=config), None, chunks.append))
    chosen = outcome.result.chosen
    np.testing.assert_array_equal(np.concatenate(chunks), chosen.audio)
    seconds = len(chosen.audio) / 16_000
    print(f"{len(outcome.result.candidates)} chunks, {seconds:.1f} s of audio:",
          [(len(c.codes), c.truncated) for c in outcome.result.candidates])
    assert len(outcome.result.candidates) >= 4  # one chosen candidate per chunk
    assert chosen.finished and not chosen.truncated and all(c.finished for c in outcome.result.candidates)
    assert seconds >= words * 0.25  # 240 words a minute would be fast speech


def test_a_sentence_that_cannot_fit_is_invalid_argument(demo_orchestrator):
    from deployments.orchestrator import RequestError, SynthesisJob

    orchestrator, limits = demo_orchestrator
    config = SearchConfig(n=1, max_new_tokens=500, max_total_tokens=limits.max_total_tokens)
    text = "Fine. " + "and then " * 110
    with pytest.raises(RequestError, match="split it into shorter sentences"):
        asyncio.run(orchestrator._search(SynthesisJob(text=text, config=config), None))


def test_previous_chunk_voice_puts_its_speech_in_the_next_prompt(demo_orchestrator):
    """long_text_voice "previous": each chunk's prompt holds the previous chunk's text and chosen codes."""
    from deployments.orchestrator import SynthesisJob

    orchestrator, limits = demo_orchestrator
    text = "The museum closes early. The garden stays open."
    config = SearchConfig(n=1, seed=1, max_new_tokens=100, max_total_tokens=limits.max_total_tokens)
    prompts = {}
    for voice in ("none", "previous"):
        orchestrator.long_text_voice = voice
        try:
            outcome = asyncio.run(orchestrator._search(SynthesisJob(text=text, config=config), None))
        finally:
            orchestrator.long_text_voice = "none"
        first, second = outcome.result.candidates
        prompts[voice] = outcome.prompt_tokens
    alone = len(orchestrator.prompt_builder("The museum closes early.")) + len(orchestrator.prompt_builder(
        "The garden stays open."))
    assert prompts["none"] == alone
    assert prompts["previous"] == len(orchestrator.prompt_builder("The museum closes early.")) + len(
        orchestrator.prompt_builder("The garden stays open.", "The museum closes early.", first.codes))


def test_a_runaway_stops_at_its_texts_cap_not_the_default_cap(demo_orchestrator):
    """At temperature 3 the demo model mostly babbles on without an end token: "Hi." stops at 2 s,
    not at the default cap's 10 s; a request's own max_speech_tokens is kept as asked. Four seeds
    each, since any one sample may still draw the end token early."""
    from dataclasses import replace

    from deployments.long_text import MIN_SPEECH_TOKEN_CAP
    from deployments.orchestrator import SynthesisJob

    orchestrator, limits = demo_orchestrator
    config = SearchConfig(n=1, temperature=3.0, max_new_tokens=500, max_total_tokens=limits.max_total_tokens)
    for job, cap in ((SynthesisJob(text="Hi.", config=config), MIN_SPEECH_TOKEN_CAP),
                     (SynthesisJob(text="Hi.", config=config.model_copy(update={"max_new_tokens": 150}),
                                   speech_tokens_asked=True), 150)):
        chosen = [asyncio.run(orchestrator._search(
            replace(job, config=job.config.model_copy(update={"seed": seed})), None)).result.chosen
            for seed in range(1, 5)]
        assert any(c.truncated for c in chosen)
        assert all(len(c.codes) == cap if c.truncated else len(c.codes) < cap for c in chosen)
