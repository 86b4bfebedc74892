"""Issue 7 over the real service (tests/serve_support.py: one Ray cluster, `serve run`, gRPC):
limits, authentication, deadlines and cancellation shown by the stages' work counters, overload,
and replica processes killed under load.

The test config requires API keys (a file with TEST_API_KEY and OTHER_API_KEY); every TTSClient
of this process sends TEST_API_KEY through LLASA_API_KEY.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from serve_support import OTHER_API_KEY, TEST_API_KEY, model_libraries, speech_wav

from llasa_client import SynthesisOptions, TTSClient, TTSError
from llasa_client.client import build_request
from protos.llasa.tts.v1 import tts_pb2 as pb
from protos.llasa.tts.v1 import tts_pb2_grpc

APP = "llasa"
STAGES = ("LMSampler", "CodecDecoder", "Verifier-asr", "Verifier-speaker")
QUICK = dict(max_speech_tokens=30, step_tokens=10, seed=7)
CHEAP = {"speaker": 1.0}  # no reference voice: the speaker verifier answers "does not apply" at once


@pytest.fixture
def client(service):
    with TTSClient(service.address) as tts:
        yield tts


def slow(timeout: float | None = None, **extra) -> SynthesisOptions:
    """Many small steps: long in wall time, every step a call to the LM, the codec and a verifier
    (return_scores: n = 1 has nothing to choose and would otherwise run no verifier)."""
    return SynthesisOptions(strategy="beam", n=1, process_verifiers=CHEAP, step_tokens=4, max_speech_tokens=1500,
                            timeout_seconds=timeout, return_scores=True, **extra)


def status_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str, object]:
    try:
        return grpc.StatusCode.OK, "", call(*args, **kwargs)
    except TTSError as err:
        return err.code, err.details, None


def wav(seconds: float, rate: int, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 180 * t)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate, format="WAV")
    return buffer.getvalue()


# Stage counters ----------------------------------------------------------------------------------
def counters(deployment: str) -> dict[str, dict]:
    """Every replica's counters, by replica id (session-id probes reach each LM replica)."""
    from ray import serve

    handle = serve.get_deployment_handle(deployment, app_name=APP)
    found: dict[str, dict] = {}
    for i in range(24 if deployment == "LMSampler" else 3):
        c = handle.options(session_id=f"probe-{i}").counters.remote().result(timeout_s=30)
        found[c["replica"]] = c
    return found


def work() -> dict[str, tuple[int, int, int, int]]:
    """(calls, items, tokens, live LM sessions) summed over each stage's replicas."""
    out = {}
    for stage in STAGES:
        replicas = counters(stage).values()
        out[stage] = tuple(sum(r.get(k, 0) for r in replicas) for k in ("calls", "items", "tokens", "sessions"))
    return out


def wait_quiet(limit: float = 30) -> tuple[dict, float]:
    """Wait until no LM session is live and no stage counter moves for 2 s; (counters, seconds)."""
    started = time.monotonic()
    before = work()
    while True:
        time.sleep(2)
        now = work()
        if now == before and now["LMSampler"][3] == 0:
            return now, time.monotonic() - started
        assert time.monotonic() - started < limit, f"the stages kept working: {before} -> {now}"
        before = now


# 1. Limits ------------------------------------------------------------------------------------------
def test_describe_reports_every_limit(client):
    limits = client.describe().limits
    assert (limits.max_text_chars, limits.max_n, limits.max_beam_width) == (1000, 16, 16)
    assert limits.max_speech_tokens == 1500
    assert (limits.max_steps, limits.max_search_tokens, limits.max_verifiers) == (500, 8000, 2)
    assert (limits.min_sample_rate, limits.max_sample_rate, limits.max_reference_bytes) == (8000, 48000, 3_500_000)
    assert limits.max_reference_seconds == 20 and limits.max_timeout_seconds == 600 and limits.max_total_tokens == 2048
    assert client.describe().api_key_required


@pytest.mark.parametrize("options, message", [
    (SynthesisOptions(strategy="beam", n=32, beam_width=32, process_verifiers=CHEAP), "max_n = 16"),
    (SynthesisOptions(strategy="beam", n=16, beam_width=32, process_verifiers=CHEAP), "max_beam_width = 16"),
    (SynthesisOptions(n=8, max_speech_tokens=1500, outcome_verifiers={"asr": 1}), "max_search_tokens = 8000"),
    (SynthesisOptions(strategy="beam", n=1, process_verifiers=CHEAP, step_tokens=1, max_speech_tokens=600),
     "max_steps = 500"),
    (SynthesisOptions(strategy="prm_orm", n=2, beam_width=2, prm_steps=600, max_speech_tokens=100,
                      process_verifiers=CHEAP, outcome_verifiers={"asr": 1}), "prm_steps = 600"),
    (SynthesisOptions(process_verifiers={"asr": 1, "speaker": 1}, outcome_verifiers={"mos": 1}), "max_verifiers = 2"),
    (SynthesisOptions(reference_audio=b"\0" * 3_600_000, reference_text="hi"), "max_reference_bytes = 3500000"),
    (SynthesisOptions(reference_audio=wav(1, 96_000), reference_text="hi"), "sample rate 96000 Hz"),
    (SynthesisOptions(reference_audio=wav(1, 4_000), reference_text="hi"), "sample rate 4000 Hz"),
    (SynthesisOptions(reference_audio=wav(25, 8_000), reference_text="hi"), "over this server's limit of 20"),
    (SynthesisOptions(reference_audio=wav(1, 16_000), reference_text="x" * 2000), "reference.transcript has 2000"),
    (SynthesisOptions(timeout_seconds=-1), "timeout_seconds = -1"),
])
def test_limits_are_invalid_argument_with_a_message(client, options, message):
    code, details, _ = status_of(client.synthesize, "Within limits?", options)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, (code, details)


def test_message_over_the_proxy_cap_is_resource_exhausted(client):
    """The fixture starts Ray with RAY_SERVE_GRPC_MAX_MESSAGE_SIZE = 4 MiB, as deployments/README.md
    tells operators to: the proxy refuses a bigger message before it reaches any replica."""
    code, details, _ = status_of(client.synthesize, "Huge.", SynthesisOptions(reference_audio=b"\0" * 5_000_000,
                                                                              reference_text="hi"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert client.describe().api_version == "llasa.tts.v1"


# 5. Authentication ----------------------------------------------------------------------------------
def test_every_rpc_needs_a_valid_key(service):
    quick = SynthesisOptions(outcome_verifiers=CHEAP, **QUICK)
    for key in ("", "wrong-key-0000", TEST_API_KEY + "x", TEST_API_KEY[:-1]):
        with TTSClient(service.address, api_key=key) as tts:
            for call in (tts.describe, lambda: tts.synthesize("Hi.", quick),
                         lambda: list(tts.synthesize_stream("Hi.", quick))):
                code, details, _ = status_of(call)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (key, code, details)
                assert "x-api-key" in details and (not key or key not in details)
    channel = grpc.insecure_channel(service.address)  # the second key, as `authorization: Bearer`
    stub = tts_pb2_grpc.TTSServiceStub(channel)
    metadata = (("application", APP), ("authorization", f"Bearer {OTHER_API_KEY}"))
    assert stub.DescribeServer(pb.DescribeServerRequest(), metadata=metadata, timeout=30).api_key_required
    assert stub.Synthesize(build_request("Bearer works.", quick), metadata=metadata, timeout=120).audio
    channel.close()


def test_cli_takes_the_api_key(service, capsys, monkeypatch):
    from llasa_client.cli import main

    monkeypatch.delenv("LLASA_API_KEY")
    assert main(["--address", service.address, "describe"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert main(["--address", service.address, "--api-key", TEST_API_KEY, "describe"]) == 0
    monkeypatch.setenv("LLASA_API_KEY", OTHER_API_KEY)
    assert main(["--address", service.address, "describe"]) == 0


def test_keys_never_reach_a_log(service):
    """After every auth test above, no log of the cluster or of `serve run` holds a key."""
    import ray

    with TTSClient(service.address, api_key="wrong-secret-in-no-log") as tts:
        assert status_of(tts.describe)[0] == grpc.StatusCode.UNAUTHENTICATED
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()] + [service.log]
    assert len(files) > 5
    for path in files:
        data = path.read_bytes()
        for key in (TEST_API_KEY, OTHER_API_KEY, "wrong-secret-in-no-log"):
            assert key.encode() not in data, f"{key} appears in {path}"


# 2. Deadlines and cancellation ----------------------------------------------------------------------
def test_client_deadline_stops_all_stage_work(client):
    start, _ = wait_quiet()
    code, _, _ = status_of(client.synthesize, "Given up on by its client.", slow(), timeout=4)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    after, settled = wait_quiet(limit=15)
    lm_tokens = after["LMSampler"][2] - start["LMSampler"][2]
    assert 0 < lm_tokens < 1000  # it did run, and stopped far before its 1500 tokens
    assert after["CodecDecoder"][0] > start["CodecDecoder"][0]
    time.sleep(3)
    assert work() == after  # nothing more, in any stage
    assert settled < 12


def test_disconnect_mid_stream_stops_all_stage_work(service):
    """A stream the client drops stops in every stage. Known Ray Serve 2.60 gap: when the client goes
    while the proxy is between two messages, the proxy closes its generator without cancelling the
    call to the ingress (serve/_private/proxy.py, send_request_to_replica catches GeneratorExit), so
    the search then ends at its own timeout_seconds instead of at once (deployments/README.md)."""
    start, _ = wait_quiet()
    channel = grpc.insecure_channel(service.address)
    stub = tts_pb2_grpc.TTSServiceStub(channel)
    timeout = 8.0
    call = stub.SynthesizeStream(build_request("Cancelled by its client.", slow(timeout)),
                                 metadata=(("application", APP), ("x-api-key", TEST_API_KEY)))
    for event in call:
        if event.progress.step == 3:
            call.cancel()
            break
    channel.close()
    after, settled = wait_quiet(limit=timeout + 15)
    print(f"work stopped {settled:.1f} s after the disconnect")
    assert after["LMSampler"][2] > start["LMSampler"][2] and after["LMSampler"][3] == 0
    time.sleep(3)
    assert work() == after


def test_server_timeout_stops_all_stage_work(client):
    wait_quiet()
    code, details, _ = status_of(client.synthesize, "Past its own timeout.", slow(2.0))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "did not finish within 2 s" in details
    after, settled = wait_quiet(limit=15)
    time.sleep(3)
    assert work() == after and settled < 12


# 3. Overload -----------------------------------------------------------------------------------------
def front_pids(deployments=("TTSIngress", "SearchOrchestrator")) -> list[int]:
    """Processes of the front of the service: the gRPC proxy and the deployments' replicas."""
    import ray

    return [actor["Pid"] for actor in ray._private.state.actors().values()
            if actor["State"] == "ALIVE" and (any(actor["ActorClassName"].endswith(f":{d}") for d in deployments)
                                              or "ProxyActor" in actor["ActorClassName"])]


def rss_mb() -> float:
    """Resident memory of the front of the service: the gRPC proxy, the ingress, the orchestrator."""
    total = 0.0
    for pid in front_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024
    return total


def burst(client, options: SynthesisOptions, count: int = 40) -> list[tuple[grpc.StatusCode, str, float]]:
    """`count` searches 10 ms apart: (code, details, seconds from the first send to the answer).
    10 ms apart: Ray Serve checks the queue as a request enters its router and counts it a moment
    later, so requests that arrive together can all pass (tests/test_serve.py)."""
    started = time.monotonic()

    def one(i):
        time.sleep(0.01 * i)
        code, details, _ = status_of(client.synthesize, f"Burst {i}.", options, timeout=180)
        return code, details, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_overload_refuses_fast_and_finishes_what_it_accepted(client):
    """The test config runs 4 searches and queues 8: a burst of 40 gets RESOURCE_EXHAUSTED for the
    rest as they arrive, every accepted search finishes (OK, or DEADLINE_EXCEEDED if its own
    budget ran out while it queued; never UNAVAILABLE, since no replica died), and the front's
    memory stays flat."""
    reference = speech_wav(rate=16_000)
    options = SynthesisOptions(strategy="beam", n=2, beam_width=2, process_verifiers=CHEAP, reference_audio=reference,
                               reference_text="A reference voice.", max_speech_tokens=60, step_tokens=10, seed=3)
    client.synthesize("Warm.", options)  # what a first request allocates once is not growth
    wait_quiet()
    memory_before = rss_mb()
    results = burst(client, options)
    codes = [code for code, _, _ in results]
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}, \
        results
    refused = [ended for code, _, ended in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    served = [ended for code, _, ended in results if code == grpc.StatusCode.OK]
    assert len(served) >= 12 and refused, codes
    # Refused on arrival, not after queueing: every refusal was back before any search that had
    # waited in the queue ended (4 run at once, so the 5th to end had waited). Not a fixed bound:
    # a CI run's busy cores took up to 2.2 s to refuse, where 1-1.8 s is usual here (and 6-7 s
    # before the proxy stopped importing torch to read the first error).
    queued_end = sorted(served)[4]
    print(f"refusals back by {max(refused):.2f} s; the first search that had queued ended at {queued_end:.2f} s")
    assert max(refused) < queued_end, (sorted(refused), sorted(served))
    assert all("queue" in details for code, details, _ in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED)
    wait_quiet()
    assert rss_mb() - memory_before < 150
    assert client.synthesize("After the burst.", SynthesisOptions(outcome_verifiers=CHEAP, **QUICK)).audio


def test_an_error_answer_loads_no_model_library_into_the_grpc_proxy_or_the_ingress(client):
    """Serve pickles the ingress's exception to its gRPC proxy, which imports the exception's module
    to read it: that module must not pull in torch (deployments/status.py). It did, and the first
    error a fresh service answered held every request through the proxy for 6-7 s. The ingress
    itself imports no model library either (errors of the LM live in llasa_core/stages.py)."""
    code, _, _ = status_of(client.synthesize, "Hello.", SynthesisOptions(n=10_000))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _, _ = status_of(client.synthesize, "Hello.", SynthesisOptions(outcome_verifiers=CHEAP, **QUICK))
    assert code == grpc.StatusCode.OK
    libraries = {pid: model_libraries(pid) for pid in front_pids(deployments=("TTSIngress",))}
    assert len(libraries) == 2
    assert not any(libraries.values()), libraries


# 4. Replica failures ---------------------------------------------------------------------------------
def kill_process(deployment: str) -> int:
    """SIGKILL the process of one of the deployment's replicas."""
    pid = min(counters(deployment).values(), key=lambda c: c["replica"])["pid"]
    os.kill(pid, signal.SIGKILL)
    return pid


def under_load(client, count: int, options: SynthesisOptions, kill, kill_after: float = 2.5):
    """`count` searches at once; `kill()` after `kill_after` s, while they all still run (a kill
    after they end tests nothing). Returns (code, details, response)s."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(status_of, client.synthesize, f"Under fire {i}.", options, timeout=150)
                   for i in range(count)]
        time.sleep(kill_after)
        assert not any(f.done() for f in futures), "the searches ended before the kill: make them longer"
        kill()
        return [f.result() for f in futures]


def wait_recovered(client, options: SynthesisOptions, limit: float = 120):
    deadline = time.monotonic() + limit
    while True:
        code, details, response = status_of(client.synthesize, "Recovered?", options, timeout=60)
        if code == grpc.StatusCode.OK:
            return response
        assert code == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline, (code, details)
        time.sleep(1)


def kill_codec_mid_call() -> int:
    """Kill the codec's process while the searches' calls wait in it: a long decode (about 2 s on
    the tiny codec) holds the replica, the searches' next decodes queue behind it, and the process
    dies under them all (a kill between calls would leave nothing to repeat: CI once saw that)."""
    from ray import serve

    codec = serve.get_deployment_handle("CodecDecoder", app_name=APP)
    codec.decode.remote([[7] * 1500] * 48)  # its answer is lost with the replica
    time.sleep(1.0)
    return kill_process("CodecDecoder")


def test_codec_and_verifier_deaths_are_retried(client):
    """Kill the codec's and a verifier's processes mid-load: the pure calls are repeated on the
    restarted replicas, every request completes, and the account shows the repeats."""
    wait_quiet()
    options = SynthesisOptions(strategy="beam", n=2, beam_width=2, process_verifiers=CHEAP,
                               max_speech_tokens=600, step_tokens=5, seed=11)
    killed = []
    results = under_load(client, 6, options, lambda: killed.extend([kill_codec_mid_call(),
                                                                     kill_process("Verifier-speaker")]))
    codes = [code for code, _, _ in results]
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, results
    assert codes.count(grpc.StatusCode.OK) >= 3, results
    retries = [r.account.stage_retries for _, _, r in results if r is not None]
    print("stage retries per request:", retries)
    assert sum(1 for r in retries if r) >= 2  # every running search had a decode queued in the dead codec
    assert all(c["pid"] not in killed for d in ("CodecDecoder", "Verifier-speaker") for c in counters(d).values())
    assert wait_recovered(client, options).verifiers_used == ["speaker"]


def lm_sessions() -> dict[int, int]:
    """Live LM sessions by replica pid."""
    return {c["pid"]: c["sessions"] for c in counters("LMSampler").values()}


def test_lm_death_fails_only_its_searches_and_the_replacement_moves_none(client):
    """Kill one of the two LM replicas while four searches run (the test orchestrator's limit):
    only searches whose KV caches it held end with UNAVAILABLE (saying to retry). The replacement
    replica joins while the others still run, and they all finish: sessions stay pinned to their
    replica (a hash ring would have moved some to the newcomer). Afterwards no session is left
    anywhere and the LM serves again."""
    wait_quiet()
    options = SynthesisOptions(strategy="beam", n=2, beam_width=2, process_verifiers=CHEAP, max_speech_tokens=1500,
                               step_tokens=5, seed=5)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(status_of, client.synthesize, f"Pinned {i}.", options, timeout=240) for i in range(4)]
        deadline = time.monotonic() + 60
        while sum((before := lm_sessions()).values()) < 4:
            assert time.monotonic() < deadline and not any(f.done() for f in futures), before
            time.sleep(0.5)
        killed = min(before, key=before.get)  # the other replica keeps the most searches running
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while len(after := lm_sessions()) < 2 or killed in after:  # the replacement is up
            assert time.monotonic() < deadline, after
            time.sleep(1)
        running_at_join = sum(not f.done() for f in futures)
        results = [f.result() for f in futures]
    print(f"sessions by replica at the kill {before}, killed {killed}; "
          f"searches still running when the replacement joined: {running_at_join}")
    assert running_at_join > 0, "the searches ended before the replacement joined: make them longer"
    codes = [code for code, _, _ in results]
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, results
    assert codes.count(grpc.StatusCode.UNAVAILABLE) <= before[killed], (before, results)
    assert before[killed] == 0 or grpc.StatusCode.UNAVAILABLE in codes, (before, results)
    assert codes.count(grpc.StatusCode.OK) >= 4 - before[killed], (before, results)
    assert all("retry" in details for code, details, _ in results if code == grpc.StatusCode.UNAVAILABLE)
    wait_quiet()
    wait_recovered(client, SynthesisOptions(outcome_verifiers=CHEAP, **QUICK))


def test_verifier_that_stays_down_degrades_only_when_allowed(client):
    """Keep killing the speaker verifier's replicas: a request that allows partial verifiers is
    answered by ASR alone and says so; one that does not gets UNAVAILABLE; both end. Then the
    verifier comes back and both verifiers score again."""
    import ray

    wait_quiet()
    stop = threading.Event()

    def keep_killing():
        while not stop.is_set():
            for actor in ray.util.list_named_actors(all_namespaces=True):
                if "#Verifier-speaker#" in actor["name"]:
                    try:
                        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]))
                    except ValueError:
                        pass
            stop.wait(0.2)

    killer = threading.Thread(target=keep_killing, daemon=True)
    killer.start()
    try:
        time.sleep(1)
        both = dict(n=2, outcome_verifiers={"asr": 1.0, "speaker": 1.0}, **QUICK)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            partial = pool.submit(status_of, client.synthesize, "Degrade.",
                                  SynthesisOptions(allow_partial_verifiers=True, **both), timeout=120)
            strict = pool.submit(status_of, client.synthesize, "Do not degrade.", SynthesisOptions(**both),
                                 timeout=120)
            code, details, response = partial.result()
            strict_code, strict_details, _ = strict.result()
    finally:
        stop.set()
        killer.join()
    assert code == grpc.StatusCode.OK, details
    assert list(response.verifiers_used) == ["asr"]
    assert [f.verifier for f in response.verifiers_failed] == ["speaker"] and response.verifiers_failed[0].reason
    verdicts = {v.verifier: v for v in response.chosen.outcome_scores}
    assert verdicts["asr"].HasField("score") and not verdicts["speaker"].HasField("score")
    assert "verifier failed" in verdicts["speaker"].reason
    assert strict_code == grpc.StatusCode.UNAVAILABLE and "speaker" in strict_details, strict_details
    recovered = wait_recovered(client, SynthesisOptions(allow_partial_verifiers=False, **both))
    assert sorted(recovered.verifiers_used) == ["asr", "speaker"] and not recovered.verifiers_failed
