"""Autoscaling per stage, shown: load that queues on the ASR verifier scales that stage up, the LM
stays at its fixed count, and the ASR verifier scales back down after the load.

    .venv/bin/python bench/bench_autoscaling.py --out out/autoscaling [--load-seconds 60]

It serves serve_config.yaml as committed (the embedded demo model and its autoscaling bounds, on
free ports) on a private Ray cluster it starts itself, and stays that cluster's driver to read
`serve.status()`. Load: --concurrency beam searches kept in flight for --load-seconds, steered by
the ASR verifier (every step scores each candidate's whole prefix). Every --poll seconds it records
the RUNNING replicas of each deployment and the autoscaler's input (ongoing requests); after the
load it waits until every autoscaled stage is back at its minimum (at most --cooldown-seconds).
Writes autoscaling.json (the samples, every request, the scaling times) and autoscaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import committed_service, wait_until_running  # noqa: E402

from llasa_bench.load import stage_seconds  # noqa: E402
from llasa_client import SynthesisOptions, TTSClient, TTSError  # noqa: E402

APPLICATION = "llasa"
TEXTS = [t for t in (ROOT / "bench" / "sentences.txt").read_text().splitlines() if t.strip()]


def replicas() -> tuple[dict[str, int], dict[str, int]]:
    """Per deployment: the RUNNING replicas, and those the autoscaler has asked for (STARTING too:
    a replica loading its model on busy cores is already the controller's decision)."""
    from ray import serve

    status = serve.status().applications.get(APPLICATION)
    if status is None:
        return {}, {}
    running = {name: int(d.replica_states.get("RUNNING", 0)) for name, d in status.deployments.items()}
    wanted = {name: sum(int(d.replica_states.get(state, 0)) for state in ("STARTING", "RUNNING"))
              for name, d in status.deployments.items()}
    return running, wanted


def ongoing_requests(controller, deployments: list[str]) -> dict[str, float]:
    """What the autoscaler compares with target_ongoing_requests x replicas: each autoscaled
    deployment's ongoing + queued requests, mean over its look-back period. Read through the
    controller's test hook (a private API of the pinned Ray 2.60); nothing public exposes it."""
    import ray
    from ray.serve._private.common import DeploymentID

    return {name: ray.get(controller._get_total_num_requests_for_deployment_for_testing.remote(
        DeploymentID(name=name, app_name=APPLICATION))) for name in deployments}


class Recorder(threading.Thread):
    """Samples (seconds since start, load on, RUNNING and STARTING + RUNNING replicas per
    deployment, the autoscaled deployments' ongoing requests) every `poll` s."""

    def __init__(self, start: float, poll: float, autoscaled: list[str]):
        import ray
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        super().__init__(daemon=True)
        self.start_time, self.poll, self.autoscaled, self.load_on = start, poll, autoscaled, False
        self.controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            running, wanted = replicas()
            self.samples.append({"t": time.monotonic() - self.start_time, "load": self.load_on, "replicas": running,
                                 "wanted": wanted, "ongoing": ongoing_requests(self.controller, self.autoscaled)})
            self.stopped.wait(self.poll)


def drive_load(client: TTSClient, options: SynthesisOptions, concurrency: int, seconds: float,
               start: float) -> list[dict]:
    """`concurrency` workers, each sending its next search as soon as the last one is answered,
    until `seconds` have passed; returns every request."""
    until = time.monotonic() + seconds
    requests: list[dict] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        time.sleep(w * 0.5)  # searches arrive one by one, not in lockstep
        i = 0
        while time.monotonic() < until:
            sent = time.monotonic()
            text = TEXTS[(w + i * concurrency) % len(TEXTS)]
            try:
                response = client.synthesize(text, options, timeout=600)
                status, stages = "OK", stage_seconds(response)
            except TTSError as err:
                status, stages = err.code.name, {}
            with lock:
                requests.append({"sent": sent - start, "answered": time.monotonic() - start, "status": status,
                                 "stages": stages})
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return requests


def first_time(samples: list[dict], after: float, deployment: str, test, key: str = "replicas") -> float | None:
    """The first sample time at or after `after` whose replica count (`key`) passes `test`."""
    return next((s["t"] for s in samples if s["t"] >= after and test(s[key].get(deployment, 0))), None)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t"] for s in samples]
    colours = {"Verifier-asr": "C0", "LMSampler": "C1", "CodecDecoder": "C2", "Verifier-speaker": "C3"}
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 2])
    for i, (name, colour) in enumerate(colours.items()):  # offset a little, so equal counts stay visible
        top.step(t, [s["replicas"].get(name, 0) + 0.03 * (1.5 - i) for s in samples], where="post", label=name,
                 color=colour)
    for ax in (top, bottom):
        ax.axvspan(report["load_started_s"], report["load_ended_s"], color="0.9", zorder=0)
    if report["asr_scaled_up_after_s"] is not None:
        up = report["load_started_s"] + report["asr_scaled_up_after_s"]
        top.annotate(f" +{report['asr_scaled_up_after_s']:.0f} s after the load started", (up, 2.12), color="C0")
    if report["asr_scaled_down_after_s"] is not None:
        down = max(report["load_ended_s"], up) + report["asr_scaled_down_after_s"]
        top.annotate(f"+{report['asr_scaled_down_after_s']:.0f} s after it ended ", (down, 2.12), ha="right",
                     color="C0")
    top.set_ylabel("RUNNING replicas")
    top.set_yticks([0, 1, 2])
    top.set_ylim(0, 2.4)
    top.legend(loc="lower right", fontsize="small")
    top.set_title(f"serve_config.yaml on {report['cpu_cores']} cores: {report['concurrency']} beam searches "
                  f"(N={report['n']}, M={report['beam_width']}, ASR at every step) in flight (grey)", fontsize="medium")
    for name in report["autoscaling"]:
        bottom.plot(t, [s["ongoing"].get(name, 0) for s in samples], label=name, color=colours.get(name))
    targets = {b["target_ongoing_requests"] for b in report["autoscaling"].values()}
    for target in targets:
        bottom.axhline(target, color="0.4", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("ongoing requests\n(look-back mean)")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right", fontsize="small", title=f"target per replica: {', '.join(map(str, targets))}",
                  title_fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/autoscaling")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=6, help="searches in flight during the load")
    parser.add_argument("-n", type=int, default=8, help="candidates per search")
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--max-speech-tokens", type=int, default=300)
    # Steps of 25 tokens (the config's stream step): twice the ASR calls per LM token of steps of
    # 50. At 50, v2's 17M LM took as long per search as the ASR (7.5 s against 7.0 s a request).
    parser.add_argument("--step-tokens", type=int, default=25)
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="recorded before the load starts")
    parser.add_argument("--cooldown-seconds", type=float, default=90.0,
                        help="after the load: wait at most this long for every stage's minimum")
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()
    import ray

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    bounds = {d["name"]: d["autoscaling_config"] for d in config["applications"][0]["deployments"]
              if "autoscaling_config" in d}
    # A beam search steered by the ASR verifier: every step scores each candidate's whole prefix,
    # which costs the ASR more than the step costs the LM (one batched pass) or the codec.
    options = SynthesisOptions(strategy="beam", n=args.n, beam_width=args.beam_width, step_tokens=args.step_tokens,
                               max_speech_tokens=args.max_speech_tokens, process_verifiers={"asr": 1.0},
                               timeout_seconds=300)
    # A private cluster of this machine's cores, whose driver this process stays (serve.status()).
    context = ray.init(address="local", include_dashboard=False, namespace="serve", log_to_driver=False,
                       configure_logging=False)
    try:
        with committed_service(Path(tempfile.mkdtemp(prefix="bench-autoscaling-")),
                               ray_address=context.address_info["gcs_address"]) as service:
            wait_until_running(APPLICATION)  # every replica up, not only the ingress
            with TTSClient(service.address) as client:
                client.synthesize("Warm up.", SynthesisOptions(strategy="best_of_n", n=2, max_speech_tokens=50))
                start = time.monotonic()
                recorder = Recorder(start, args.poll, list(bounds))
                recorder.start()
                time.sleep(args.idle_seconds)
                recorder.load_on = True
                load_started = time.monotonic() - start
                requests = drive_load(client, options, args.concurrency, args.load_seconds, start)
                recorder.load_on = False
                load_ended = time.monotonic() - start
                minimum = {name: b.get("min_replicas", 1) for name, b in bounds.items()}
                deadline = time.monotonic() + args.cooldown_seconds
                while time.monotonic() < deadline:
                    time.sleep(args.poll)
                    current = recorder.samples[-1]  # none STARTING either: a late scale-up is seen through
                    if all(current["replicas"].get(name, 0) == current["wanted"].get(name, 0) == low
                           for name, low in minimum.items()):
                        break
                time.sleep(2 * args.poll)
                recorder.stopped.set()
                recorder.join()
    finally:
        ray.shutdown()
    samples = recorder.samples
    ok = [r for r in requests if r["status"] == "OK"]
    decided = first_time(samples, load_started, "Verifier-asr", lambda r: r > 1, key="wanted")
    up = first_time(samples, load_started, "Verifier-asr", lambda r: r > 1)
    # back to one replica after the load (and after the scale-up, had that come later)
    down_from = None if up is None else max(load_ended, up)
    down = None if up is None else first_time(samples, down_from, "Verifier-asr", lambda r: r == 1)
    report = {
        "cpu_cores": os.cpu_count(), "concurrency": args.concurrency, "n": args.n, "beam_width": args.beam_width,
        "max_speech_tokens": args.max_speech_tokens, "step_tokens": args.step_tokens, "autoscaling": bounds,
        "load_started_s": load_started, "load_ended_s": load_ended,
        # after the load started: the second replica asked for (STARTING), then RUNNING
        "asr_scale_up_decided_after_s": None if decided is None else decided - load_started,
        "asr_scaled_up_after_s": None if up is None else up - load_started,
        # after the load ended, or after the scale-up where that came later
        "asr_scaled_down_after_s": None if down is None else down - down_from,
        "max_replicas_seen": {name: max(s["replicas"].get(name, 0) for s in samples)
                              for name in samples[0]["replicas"]},
        "min_replicas_seen": {name: min(s["replicas"].get(name, 0) for s in samples)
                              for name in samples[0]["replicas"]},
        "peak_ongoing_requests": {name: max(s["ongoing"].get(name, 0) for s in samples) for name in bounds},
        "stage_seconds_per_request": {stage: statistics.mean(r["stages"].get(stage, 0) for r in ok)
                                      for stage in ("lm", "codec", "verifier_asr", "total")},
        "requests_by_status": {status: sum(r["status"] == status for r in requests)
                               for status in sorted({r["status"] for r in requests})},
        "samples": samples, "requests": requests,
    }
    (out / "autoscaling.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "autoscaling.png")
    print(json.dumps({k: v for k, v in report.items() if k not in ("samples", "requests", "autoscaling")}))


if __name__ == "__main__":
    main()
