"""The service for the serve tests: one local Ray cluster and one `serve run` per test session.

The pytest process starts a private Ray cluster (ray.init, so it is never another engineer's
cluster and it goes away with `ray.shutdown()`), then runs `serve run <config>` against it the
way the README does, with a test config derived from serve_config.yaml: the tiny random models
(searches as long as a test needs), two LM replicas (to prove session affinity), free ports, a
small search queue (to reach RESOURCE_EXHAUSTED quickly), API keys from a file (every client in
this process sends TEST_API_KEY through LLASA_API_KEY) and short stage timeouts (so failure tests
end quickly). The pytest process stays a Ray driver, so
tests can look at and kill replicas.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from llasa_client import TTSClient, TTSError

ROOT = Path(__file__).resolve().parent.parent
SERVE = str(Path(sys.executable).with_name("serve"))
TEST_API_KEY = "llasa-test-key-7f3a9c"
MESSAGE_CAP_ENV, MESSAGE_CAP = "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", 4 << 20
OTHER_API_KEY = "llasa-second-key-51b2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config(base: dict, grpc_port: int, http_port: int, keys_file: Path | None = None) -> dict:
    """serve_config.yaml with the test's changes; everything else as the user runs it."""
    config = yaml.safe_load(yaml.safe_dump(base))
    config["grpc_options"]["port"] = grpc_port
    config["http_options"]["port"] = http_port
    args = config["applications"][0]["args"]
    # The tiny random checkpoints: their searches never stop early, so a test can make one last as
    # long as it needs. The README test serves the embedded demo model exactly as configured.
    args["lm"]["model"] = args["codec"]["model"] = "tiny-random"
    # No default voice: a request without a reference has none, so the speaker verifier answers "does
    # not apply" at once where a test needs no scores. The README test serves the configured one.
    args["lm"]["default_voice"] = None
    # No compiled step: it adds seconds to every LM replica start, and tests kill and restart replicas
    # (tests/test_core_lm.py covers it; the README test serves it as configured).
    args["lm"]["compile_one_row"] = False
    if keys_file is not None:
        args["auth"] = {"api_keys_file": str(keys_file)}
    # A stage with no running replica fails a call after stage_timeout_s, three times at most: so a
    # killed codec's replacement must be up within about 3 x stage_timeout_s. It took over 30 s in a
    # CI run beside two CPU-bound jobs (load 8-10 on 2 cores), so 20 s, not the 60 s of the config
    # (a verifier kept down fails its strict request after about a minute, not three).
    args["resilience"] = {"stage_retries": 2, "retry_backoff_s": 0.2, "stage_timeout_s": 20}
    args["limits"].update(max_search_tokens=8000, max_verifiers=2)  # low enough to reach in a test
    args["verifiers"].append({"name": "judge", "kind": "asr", "backend": "pocketsphinx"})  # small, independent
    args["judge"] = "judge"
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    # Fixed replica counts: tests count and kill replicas (bench/bench_autoscaling.py shows scaling).
    for deployment in deployments.values():
        if deployment.pop("autoscaling_config", None) is not None:
            deployment["num_replicas"] = 1
    deployments["LMSampler"]["num_replicas"] = 2
    deployments["SearchOrchestrator"].update(max_ongoing_requests=4, max_queued_requests=8)
    return config


def wait_until_up(address: str, process: subprocess.Popen | None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"`serve run` exited with {process.returncode}")
        try:
            with TTSClient(address) as client:
                client.describe(timeout=5)
            return
        except TTSError:
            time.sleep(2)
    raise TimeoutError(f"the service at {address} did not come up within {timeout} s")


def wait_until_running(app: str, timeout: float = 300) -> None:
    """The ingress answers before every replica is up: the tests that count replicas, or kill one,
    need all of them."""
    from ray import serve

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        if status is not None and status.status == "RUNNING":
            return
        time.sleep(1)
    raise TimeoutError(f"the application {app!r} was not RUNNING within {timeout} s")


def _as_from_a_terminal() -> None:
    """In the child, before exec: Ctrl-C delivered and handled as in a shell. A child inherits its
    parent's blocked and ignored signals, and libraries in the test process (a Ray driver) may block
    SIGINT: then `serve run` never sees Ctrl-C (two CI runs: SIGTERM after 60 s)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_serve_run(config_path: Path, log_path: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [SERVE, "run", str(config_path)], cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_as_from_a_terminal,
    )


def stop_serve_run(process: subprocess.Popen) -> None:
    """Ctrl-C, as a terminal sends it: to the whole process group (`serve run` and the local Ray
    cluster it started); then harder if it lingers."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def model_libraries(pid: int) -> set[str]:
    """torch's and CTranslate2's shared libraries mapped into a process."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in maps if "libtorch" in line or "ctranslate2" in line}


def ray_processes(session: int) -> dict[int, str]:
    """pid -> process title (`ray::ServeReplica:llasa:TTSIngress`, `ray::ProxyActor`) of the Ray
    processes in one process session: a `serve run` and the local cluster it started (each worker
    has a process group of its own, but stays in the session)."""
    titles = {}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (proc / "stat").read_text()
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
            if title.startswith("ray::") and int(stat.rsplit(")", 1)[1].split()[3]) == session:
                titles[int(proc.name)] = title
    return titles


@dataclass
class CommittedService:
    address: str  # gRPC, host:port
    url: str  # HTTP, http://host:port
    session: int  # process session of `serve run` and its cluster
    stop_seconds: float | None = None  # from Ctrl-C to exit, once stopped


@contextlib.contextmanager
def committed_service(work: Path, ray_address: str = "local", **app_args) -> Iterator[CommittedService]:
    """`serve run` of serve_config.yaml as committed (the embedded demo model), on free ports and a
    private Ray cluster, with `app_args` over the application's args; yields once it answers and
    stops it with Ctrl-C after, timing the stop (the README test and the service benches).
    `ray_address`: a cluster the caller started (ray.init) to stay its driver; else serve run's own."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["grpc_options"]["port"], config["http_options"]["port"] = free_port(), free_port()
    config["applications"][0]["args"].update(app_args)
    (work / "serve_config.yaml").write_text(yaml.safe_dump(config))
    # RAY_ADDRESS=local: a private cluster, never one another user started on this machine.
    process = start_serve_run(work / "serve_config.yaml", work / "serve.log", {**os.environ, "RAY_ADDRESS": ray_address})
    service = CommittedService(f"127.0.0.1:{config['grpc_options']['port']}",
                               f"http://127.0.0.1:{config['http_options']['port']}", process.pid)
    try:
        wait_until_up(service.address, process)
        yield service
    finally:
        interrupted = time.monotonic()
        stop_serve_run(process)
        service.stop_seconds = time.monotonic() - interrupted


@dataclass
class Service:
    address: str
    log: Path
    config: dict  # the config it runs
    metrics_port: int | None = None  # Ray's Prometheus export (every node's metrics agent)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.config['http_options']['port']}"


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Service:
    import ray
    from ray import serve

    work = tmp_path_factory.mktemp("serve")
    grpc_port, http_port = free_port(), free_port()
    config_path = work / "serve_config.test.yaml"
    keys_file = work / "api-keys"
    keys_file.write_text(f"# test keys\n{TEST_API_KEY}\n{OTHER_API_KEY}  # a second client\n")
    base = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config = test_config(base, grpc_port, http_port, keys_file)
    config["applications"][0]["args"]["voice_store"] = str(work / "voices")
    metrics_port = free_port()
    config_path.write_text(yaml.safe_dump(config))
    previous_key = os.environ.get("LLASA_API_KEY")
    os.environ["LLASA_API_KEY"] = TEST_API_KEY  # every TTSClient of this process sends it
    # Serve's gRPC proxy takes messages up to 2 GiB unless told otherwise (deployments/README.md).
    os.environ.setdefault(MESSAGE_CAP_ENV, str(MESSAGE_CAP))
    # Serve kills a proxy that is not ready within 3 checks of 5 s; starting one took longer than
    # that with the two cores busy (load 4), and `serve run` then exits.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30")
    # Idle, Serve's defaults (metrics exported every 0.1 s by each of 11 replicas, the controller's
    # loop every 0.1 s) kept 0.59 of the 2 cores busy; these settings, 0.30 (README "CPU speed").
    os.environ.setdefault("RAY_SERVE_METRICS_EXPORT_INTERVAL_MS", "1000")
    os.environ.setdefault("RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.5")
    context = ray.init(num_cpus=4, include_dashboard=False, namespace="serve", log_to_driver=False,
                       configure_logging=False, _metrics_export_port=metrics_port)
    process = None
    try:
        env = {**os.environ, "RAY_ADDRESS": context.address_info["gcs_address"]}
        log = work / "serve.log"
        process = start_serve_run(config_path, log, env)
        address = f"127.0.0.1:{grpc_port}"
        wait_until_up(address, process)
        wait_until_running(config["applications"][0]["name"])
        yield Service(address=address, log=log, config=config, metrics_port=metrics_port)
    finally:
        if process is not None:
            stop_serve_run(process)
        serve.shutdown()
        ray.shutdown()
        if previous_key is None:
            os.environ.pop("LLASA_API_KEY", None)
        else:
            os.environ["LLASA_API_KEY"] = previous_key


def speech_wav(text: str = "This is my voice, speaking clearly.", rate: int = 22_050) -> bytes:
    """A reference voice file for the service tests: piper speech (the verifiers' test voice) as
    a WAV at `rate`. Synthetic tones are refused as references (llasa_core.validation)."""
    from math import gcd

    from scipy.signal import resample_poly
    from verifier_fixtures import synthesize

    from llasa_core.audio import SAMPLE_RATE, write_wav

    g = gcd(rate, SAMPLE_RATE)
    return write_wav(resample_poly(synthesize(text), rate // g, SAMPLE_RATE // g), sample_rate=rate)
