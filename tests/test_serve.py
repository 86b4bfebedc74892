"""The service over a real gRPC channel: Ray Serve, its gRPC proxy, and every deployment.

Tests here share one Ray cluster and one `serve run` (serve_support.service). The README test
runs first and starts the service as the README says (free ports, nothing else changed), on its
own private cluster, and checks that the embedded demo model speaks.
The tiny random models speak noise, so scores are not judged here, only the contract.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import subprocess
import time

import grpc
import pytest
import soundfile as sf
from serve_support import ROOT, TEST_API_KEY, committed_service, model_libraries, ray_processes, speech_wav

from llasa_client import SynthesisOptions, TTSClient, TTSError
from llasa_client.client import build_request
from deployments.voices import read_voice_file
from llasa_core.prompt import PromptBuilder
from llasa_core.stages import ScoreContext
from protos.llasa.tts.v1 import tts_pb2 as pb
from protos.llasa.tts.v1 import tts_pb2_grpc
from verifiers.registry import build_verifier

# Short searches: 0.6 s of speech in steps of 0.2 s; the speaker verifier answers "does not apply"
# without a reference voice, so it costs nothing where a test does not need real scores.
QUICK = dict(max_speech_tokens=30, step_tokens=10, seed=7)
CHEAP_VERIFIER = {"speaker": 1.0}


@pytest.fixture
def client(service):
    with TTSClient(service.address) as tts:
        yield tts


def reference_wav() -> bytes:
    """Piper speech at 22.05 kHz, so the service resamples it."""
    return speech_wav()


def assert_status(code: grpc.StatusCode, call, *args, **kwargs) -> str:
    with pytest.raises(TTSError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value.details


@pytest.mark.own_cluster
def test_readme_command_starts_the_service_that_speaks_and_stops_on_ctrl_c(tmp_path):
    """`serve run serve_config.yaml` and the quickstart's CLI call, both copied from the README, on
    free ports (the config is otherwise the committed one: the embedded demo model). The service
    must say a sentence so that an independent ASR (pocketsphinx, not the service's Whisper)
    hears most of its words, and Ctrl-C must stop the whole local cluster."""
    readme = (ROOT / "README.md").read_text()
    assert "serve run serve_config.yaml" in readme
    cli_line = next(line for line in readme.splitlines() if "llasa-tts synthesize" in line)
    with committed_service(tmp_path) as service:
        address = service.address
        args = cli_line.split()[1:]  # after .venv/bin/llasa-tts
        assert args[0] == "synthesize"
        args = ["--address", address] + [a if a != "hello.wav" else str(tmp_path / "hello.wav") for a in args]
        done = subprocess.run([str(ROOT / ".venv/bin/llasa-tts"), *args], capture_output=True, text=True,
                              timeout=180, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        audio, rate = sf.read(tmp_path / "hello.wav")
        assert rate == 16_000 and audio.size > 0
        assert (tmp_path / "hello.json").exists()
        assert "step 1:" in done.stderr  # progress from the streaming call

        text = "My friend works as a teacher in Boston."
        with TTSClient(address) as client:
            response = client.synthesize(text, SynthesisOptions(seed=1, word_timestamps=True))
        [verdict] = build_verifier({"name": "judge", "kind": "asr", "backend": "pocketsphinx"}).score(
            [sf.read(io.BytesIO(response.audio), dtype="float32")[0]], [ScoreContext(text)])
        assert verdict.raw <= 0.5, f"the judge heard {verdict.detail.get('transcript')!r} for {text!r}"
        # no reference in the request: the configured default voice speaks, from its stored codes
        with TTSClient(address) as client:
            assert client.describe().lm.detail["default_voice"] == "models/llasa-demo/voice.npz"
        voice = read_voice_file(str(ROOT / "models/llasa-demo/voice.npz"))
        prompt = PromptBuilder.from_pretrained(str(ROOT / "models/llasa-demo/lm"))(text, voice.transcript, voice.codes)
        assert response.prompt_tokens == len(prompt) and response.timings.reference_encode_seconds < 0.05
        # word timestamps: the request's own words, in order, in time, inside the audio
        assert [w.word.strip(".,") for w in response.words] == text.rstrip(".").split()
        times = [t for w in response.words for t in (w.start_seconds, w.end_seconds)]
        assert times == sorted(times) and 0 <= times[0] and times[-1] <= response.audio_seconds + 0.05

        # Only the stage replicas load a model library; the front (gRPC proxy, ingress, orchestrator)
        # stays small: 83, 137 and 160 MB private memory here, against 355 MB for an ingress with torch.
        processes = ray_processes(service.session)
        front = {pid: model_libraries(pid) for pid, title in processes.items()
                 if any(part in title for part in ("ProxyActor", ":TTSIngress", ":SearchOrchestrator"))}
        assert len(front) == 3, processes
        assert not any(front.values()), front
        assert any(model_libraries(pid) for pid, title in processes.items() if ":LMSampler" in title), \
            "the check sees no libtorch"
    stopped = service.stop_seconds
    print(f"Ctrl-C to exit: {stopped:.1f} s")
    # Measured here: 9.4-9.8 s from Ctrl-C to exit (README: within 10 s); once, in a CI run, over 60 s.
    assert stopped < 30, f"`serve run` took {stopped:.0f} s to stop after Ctrl-C"


def test_describe_server(service, client):
    description = client.describe()
    assert description.api_version == "llasa.tts.v1"
    assert description.lm.name == service.config["applications"][0]["args"]["lm"]["model"]
    assert {v.name for v in description.verifiers} == {"asr", "speaker", "judge"}
    assert (description.judge, description.timestamps_verifier) == ("judge", "asr")
    assert description.limits.max_n >= 8 and description.sample_rate == 16_000
    assert set(description.strategies) == {pb.STRATEGY_BEST_OF_N, pb.STRATEGY_BEAM, pb.STRATEGY_DVTS,
                                           pb.STRATEGY_PRM_ORM}


@pytest.mark.parametrize("strategy, options", [
    ("best_of_n", dict(n=2, outcome_verifiers={"asr": 1.0})),
    ("beam", dict(n=4, beam_width=2, process_verifiers=CHEAP_VERIFIER)),
    ("dvts", dict(n=4, beam_width=2, process_verifiers=CHEAP_VERIFIER)),
    ("prm_orm", dict(n=4, beam_width=2, prm_steps=1, process_verifiers=CHEAP_VERIFIER,
                     outcome_verifiers={"asr": 1.0})),
])
def test_each_strategy_end_to_end(client, strategy, options):
    response = client.synthesize("Hello from the service.", SynthesisOptions(strategy=strategy, **QUICK, **options))
    audio, rate = sf.read(io.BytesIO(response.audio))
    assert rate == 16_000 and abs(audio.size / rate - response.audio_seconds) < 1e-3
    assert response.strategy == strategy
    assert response.chosen.id in {c.id for c in response.candidates}
    assert response.chosen.num_tokens <= QUICK["max_speech_tokens"]
    account = response.account
    assert account.lm_prefill_tokens == response.prompt_tokens  # the prompt, prefilled once
    assert account.lm_generated_tokens > 0 and account.codec.calls > 0
    if "asr" in options.get("outcome_verifiers", {}):
        verdict = next(v for v in response.chosen.outcome_scores if v.verifier == "asr")
        # the tiny random LM speaks noise: the ASR hears it, or refuses it as not speech with its worst score
        assert verdict.metric == "wer" and 0 <= verdict.score <= 1
        assert "transcript" in verdict.detail or (verdict.score == 0 and verdict.reason.startswith("not speech"))
        assert account.verifiers["asr"].items >= len(response.candidates)
    assert response.timings.total_seconds >= response.timings.search_seconds > 0


def test_the_judge_listens_on_request_and_never_steers_a_search(client):
    response = client.synthesize("Judge this.", SynthesisOptions(judge=True, word_timestamps=True, **QUICK))
    assert response.judge.verifier == "judge" and response.judge.metric == "wer"
    assert 0 <= response.judge.score <= 1 and "judge" not in response.verifiers_used
    assert all(w.end_seconds >= w.start_seconds for w in response.words)
    details = assert_status(grpc.StatusCode.INVALID_ARGUMENT, client.synthesize, "Steer.",
                            SynthesisOptions(n=2, outcome_verifiers={"judge": 1.0}, **QUICK))
    assert "this server's judge" in details


def test_stream_sends_progress_then_the_result(client):
    options = SynthesisOptions(strategy="beam", n=2, beam_width=2, process_verifiers=CHEAP_VERIFIER, **QUICK)
    events = [e for e in client.synthesize_stream("Streaming, step by step.", options)
              if not e.HasField("audio")]  # audio chunks: tests/test_streaming.py
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["progress"] * (len(kinds) - 1) + ["result"] and len(kinds) >= 3
    steps = [e.progress.step for e in events[:-1]]
    assert steps == list(range(1, len(steps) + 1))
    generated = [e.progress.lm_generated_tokens for e in events[:-1]]
    assert generated == sorted(generated) and events[-1].result.account.steps == len(steps)


def test_reference_voice(client):
    options = SynthesisOptions(outcome_verifiers={"speaker": 1.0}, n=2, reference_audio=reference_wav(),
                               reference_text="This is my voice.", **QUICK)
    response = client.synthesize("Say it in my voice.", options)
    verdict = response.chosen.outcome_scores[0]
    assert verdict.verifier == "speaker" and verdict.HasField("score") and -1 <= verdict.raw <= 1
    assert response.timings.reference_encode_seconds > 0
    # the reference's ~75 codes are in the prompt, prefilled once; its audio is cut from the output
    assert response.prompt_tokens > 70 and response.account.lm_prefill_tokens == response.prompt_tokens
    assert response.chosen.num_tokens <= QUICK["max_speech_tokens"]


@pytest.mark.parametrize("text, options, message", [
    ("", SynthesisOptions(), "text is empty"),
    ("x" * 5000, SynthesisOptions(), "over this server's limit of 1000"),
    ("Hi", SynthesisOptions(reference_audio=b"not audio", reference_text="hi"), "reference.audio: could not read"),
    ("Hi", SynthesisOptions(reference_audio=reference_wav(), reference_text=""), "reference.transcript is empty"),
    ("Hi", SynthesisOptions(n=64, strategy="best_of_n", outcome_verifiers={"asr": 1}), "max_n = 16"),
    ("Hi", SynthesisOptions(max_speech_tokens=100_000), "max_speech_tokens = 100000 must be in"),
    ("Hi", SynthesisOptions(outcome_verifiers={"mos": 1.0}), "unknown verifier(s) ['mos']"),
    ("Hi", SynthesisOptions(strategy="beam", n=3, beam_width=2, process_verifiers={"asr": 1}), "multiple of beam_width"),
    ("Hi", SynthesisOptions(timeout_seconds=10_000), "timeout_seconds = 10000"),
])
def test_invalid_argument(client, text, options, message):
    details = assert_status(grpc.StatusCode.INVALID_ARGUMENT, client.synthesize, text, options)
    assert message in details
    details = assert_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: list(client.synthesize_stream(text, options)))
    assert message in details


def slow_options(timeout: float | None = None, step_tokens: int = 4) -> SynthesisOptions:
    """A search of many small steps: long in wall time, cheap to cancel between steps."""
    return SynthesisOptions(strategy="beam", n=1, process_verifiers=CHEAP_VERIFIER, step_tokens=step_tokens,
                            max_speech_tokens=1500, timeout_seconds=timeout)


def test_deadline_exceeded_then_still_up(client):
    details = assert_status(grpc.StatusCode.DEADLINE_EXCEEDED, client.synthesize, "Too long.", slow_options(1.0))
    assert "did not finish within 1 s" in details
    assert client.synthesize("Still here.", SynthesisOptions(outcome_verifiers=CHEAP_VERIFIER, **QUICK)).audio


def test_eight_concurrent_requests_all_answered(client):
    options = SynthesisOptions(n=2, outcome_verifiers={"asr": 1.0}, **QUICK)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: client.synthesize(f"Request number {i}.", options), range(8)))
    assert len(responses) == 8
    assert all(r.audio and r.account.lm_prefill_tokens == r.prompt_tokens for r in responses)


def test_resource_exhausted_when_the_queue_is_full(service, client):
    """The test config allows 4 running + 8 queued searches: once they are taken, a further search
    is refused with a message that says what to do, and the admitted ones keep running.

    Ray Serve checks the queue when a request enters its router and counts it queued a moment
    later, so a burst that arrives at once can all pass the check (bursts of 20 saw 0 to 12 of them
    refused). The test fills the service first, then sends one search at a time, each within half
    a second (the refusal took 0.1-0.2 s), so that no running search ends and admits one."""
    channel = grpc.insecure_channel(service.address)
    stub = tts_pb2_grpc.TTSServiceStub(channel)
    metadata = (("application", "llasa"), ("x-api-key", TEST_API_KEY))

    def stream(text):  # 500 steps of 3 tokens: about 15 s here
        return stub.SynthesizeStream(build_request(text, slow_options(90, step_tokens=3)), metadata=metadata)

    admitted = [stream(f"Busy {i}.") for i in range(12)]
    extra = []
    pool = concurrent.futures.ThreadPoolExecutor(12)
    try:
        started = [pool.submit(next, call) for call in admitted]  # a running search sends progress

        def running() -> int:
            return sum(f.done() and f.exception() is None for f in started)

        deadline = time.monotonic() + 60
        while running() < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running() >= 4, "4 searches should run at once"
        time.sleep(1)  # the others reach the orchestrator's queue
        for i in range(8):  # capacity is 12, so the 8 beyond it cannot all be admitted
            extra.append(stream(f"One too many {i}."))  # quickly, before a search ends and frees a slot
            refused_by = time.monotonic() + (0.5 if i < 7 else 15)
            while not (refused := [call for call in extra if call.done()]) and time.monotonic() < refused_by:
                time.sleep(0.1)
            if refused:
                break
        assert refused, "8 searches past the capacity of 12 were all admitted"
        assert all(call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for call in refused), refused[0].details()
        assert all("queues are full" in call.details() and "retry with backoff" in call.details() for call in refused)
        assert sum(not call.done() for call in admitted) >= 4  # the refusals stopped no running search
    finally:
        for call in admitted + extra:
            call.cancel()  # also ends the threads waiting for a first event
        pool.shutdown()
        channel.close()
    deadline = time.monotonic() + 60
    while True:  # cancelled searches leave the queue; the service answers again
        try:
            assert client.synthesize("Back.", SynthesisOptions(outcome_verifiers=CHEAP_VERIFIER, **QUICK)).audio
            break
        except TTSError as err:
            if err.code != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_beam_token_account_equals_in_process_with_two_lm_replicas(service, client):
    """Every step of a search reaches the LM replica holding its KV cache: the prompt is prefilled
    once per search, and the account equals the same search run in process."""
    from deployments.config import resolve_model
    from llasa_core.codec import load_codec
    from llasa_core.engine import LlasaTTS
    from llasa_core.lm import TransformersLM
    from llasa_core.search import SearchConfig
    from verifiers import VerifierConfig, build_verifier

    import ray
    lm_replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if "#LMSampler#" in a["name"]]
    assert len(lm_replicas) == 2

    text, n, width = "Affinity through two replicas.", 4, 2
    options = SynthesisOptions(strategy="beam", n=n, beam_width=width, process_verifiers=CHEAP_VERIFIER, **QUICK)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four sessions: both replicas serve some
        responses = list(pool.map(lambda _: client.synthesize(text, options), range(4)))

    args = service.config["applications"][0]["args"]
    engine = LlasaTTS(TransformersLM(resolve_model(args["lm"]["model"], "llasa", ".cache/tiny"),
                                     quantize=args["lm"].get("quantize")),
                      load_codec(resolve_model(args["codec"]["model"], "xcodec2", ".cache/tiny")),
                      {"speaker": build_verifier(VerifierConfig(name="speaker", kind="speaker"))})
    config = SearchConfig(strategy="beam", n=n, beam_width=width, process_verifiers=CHEAP_VERIFIER,
                          step_tokens=QUICK["step_tokens"], max_new_tokens=QUICK["max_speech_tokens"], seed=7)
    local = asyncio.run(engine.synthesize(text, config))
    for response in responses:
        assert response.account.lm_prefill_tokens == response.prompt_tokens == local.account.lm_prefill_tokens
        assert response.account.lm_generated_tokens == local.account.lm_generated_tokens
        assert response.account.steps == local.steps
        assert response.account.lm.calls == local.account.lm.calls


def test_unavailable_while_the_lm_is_down_then_recovers(client):
    """Kill both LM replicas during a search: that search gets UNAVAILABLE, later ones succeed."""
    import ray

    events = client.synthesize_stream("Interrupted.", slow_options(120))
    with pytest.raises(TTSError) as info:
        for event in events:
            if event.WhichOneof("event") == "progress" and event.progress.step == 2:
                for actor in ray.util.list_named_actors(all_namespaces=True):
                    if "#LMSampler#" in actor["name"]:
                        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=False)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE, info.value
    assert "retry" in info.value.details
    deadline = time.monotonic() + 120
    while True:
        try:
            assert client.synthesize("Recovered.", SynthesisOptions(outcome_verifiers=CHEAP_VERIFIER, **QUICK)).audio
            return
        except TTSError as err:
            if err.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(2)
