"""`llasa-bench tune`: how many replicas each stage needs for a target load.

1. Demand: requests at concurrency 1 through gRPC; each response's compute account gives the
   seconds every stage spent on it (D_s, per request).
2. Batching gain: the codec and verifier deployments merge concurrent calls (@serve.batch). On
   the running service, time calls alone and `--batch` concurrent calls through Ray Serve
   handles; gain_s = sum of t(each alone) / t(all together). The calls are realistic and mixed,
   not copies of one: verifier calls score the probe responses' audio (different texts) cut to
   1/4 .. 4/4 of its length, as a search's prefixes are, and codec calls decode as many lengths. A batched stage's demand under
   load is D_s / gain_s. The LM does not batch across requests: gain 1.
3. Replicas: r_s = ceil(rate * D_s / gain_s / utilisation). The predicted capacity of a set of
   replicas is min_s r_s * gain_s / D_s requests/s (the slowest stage saturates first).
4. Verification: a closed-loop load run at saturation on the service as deployed; the report sets
   its measured throughput beside the capacity predicted for the replicas that ran (their mean
   over the run, as autoscaling moves them). Deploy `serve_config.tuned.yaml` (the config with
   the recommendation applied) and run tune again to verify the recommendation itself.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import statistics
import threading
import time
from pathlib import Path

import yaml

from deployments.app import verifier_deployment_name
from llasa_bench.load import closed_loop, options_from, stage_seconds, summarise
from llasa_client.client import TTSClient
from llasa_core.audio import read_audio

APPLICATION = "llasa"


# load.stage_seconds' names -> the deployment that spends those seconds
DEPLOYMENT_OF = {"lm": "LMSampler", "codec": "CodecDecoder", "search": "SearchOrchestrator", "total": "TTSIngress"}


def deployment_of(stage: str) -> str:
    return DEPLOYMENT_OF.get(stage) or verifier_deployment_name(stage.removeprefix("verifier_"))


def demand(client: TTSClient, texts: list[str], options, requests: int) -> tuple[dict[str, float], dict, list]:
    """Mean stage seconds per request at concurrency 1, the call sizes, and (text, audio) of every
    response."""
    per_stage: dict[str, list[float]] = {}
    response = None
    spoken = []
    for i in range(requests):
        response = client.synthesize(texts[i % len(texts)], options, timeout=600)
        spoken.append((texts[i % len(texts)], read_audio(response.audio)))
        for stage, seconds in stage_seconds(response).items():
            per_stage.setdefault(deployment_of(stage), []).append(seconds)
    account = response.account
    calls = {"codec_items": account.codec.items / max(1, account.codec.calls),
             "verifier_items": {n: v.items / max(1, v.calls) for n, v in account.verifiers.items()},
             "codes_per_item": max(1, int(response.chosen.num_tokens))}
    return {k: statistics.mean(v) for k, v in per_stage.items()}, calls, spoken


async def _timed(make_calls) -> float:
    started = time.perf_counter()
    await asyncio.gather(*make_calls())
    return time.perf_counter() - started


async def batching_gain(handle, method: str, calls: list[tuple], repeats: int = 3) -> float:
    """Sum over `calls` of t(call alone) / t(all calls concurrently), medians over repeats."""
    call = getattr(handle, method)
    await call.remote(*calls[0])  # warm up
    alone = 0.0
    for args in calls:
        alone += statistics.median([await _timed(lambda: [call.remote(*args)]) for _ in range(repeats)])
    together = statistics.median([await _timed(lambda: [call.remote(*args) for args in calls])
                                  for _ in range(repeats)])
    return max(1.0, alone / together)


def mixed(spoken: list, count: int, per_call: int) -> list[tuple[list, list[str]]]:
    """`count` calls of `per_call` items: the responses' audio in turn, cut to 1/4 .. 4/4."""
    calls = []
    for c in range(count):
        items = [spoken[(c * per_call + k) % len(spoken)] for k in range(per_call)]
        cuts = [(c + k) % 4 + 1 for k in range(per_call)]
        calls.append(([audio[: len(audio) * cut // 4] for (_, audio), cut in zip(items, cuts)],
                      [text for text, _ in items]))
    return calls


def measure_gains(calls: dict, spoken: list, batch: int) -> dict[str, float]:
    from ray import serve

    from llasa_core.stages import ScoreContext

    async def measure():
        gains = {"LMSampler": 1.0, "SearchOrchestrator": 1.0, "TTSIngress": 1.0}
        codec = serve.get_deployment_handle("CodecDecoder", app_name=APPLICATION)
        items = max(1, round(calls["codec_items"]))
        lengths = [max(1, calls["codes_per_item"] * ((c + k) % 4 + 1) // 4) for c in range(batch) for k in range(items)]
        codec_calls = [([[0] * lengths[c * items + k] for k in range(items)],) for c in range(batch)]
        gains["CodecDecoder"] = await batching_gain(codec, "decode", codec_calls)
        for name, per_call in calls["verifier_items"].items():
            deployment = verifier_deployment_name(name)
            verifier = serve.get_deployment_handle(deployment, app_name=APPLICATION)
            score_calls = [(audios, [ScoreContext(text=t) for t in texts])
                           for audios, texts in mixed(spoken, batch, max(1, round(per_call)))]
            gains[deployment] = await batching_gain(verifier, "score", score_calls)
        return gains

    return asyncio.run(measure())


def running_replicas() -> dict[str, int]:
    from ray import serve

    status = serve.status().applications[APPLICATION]
    return {name: int(d.replica_states.get("RUNNING", 0)) for name, d in status.deployments.items()}


def verify(client: TTSClient, texts: list[str], options, concurrency: int, requests: int) -> tuple[dict, dict]:
    """The closed-loop run at saturation, and each stage's RUNNING replicas, their mean over the run
    (sampled every second: autoscaled stages move during it)."""
    samples, done = [running_replicas()], threading.Event()

    def sample():
        while not done.wait(1.0):
            samples.append(running_replicas())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        measured = summarise("verify", None, closed_loop(client, texts, options, concurrency, requests, timeout=600))
    finally:
        done.set()
        sampler.join()
    return measured, {name: statistics.mean(s.get(name, 0) for s in samples) for name in samples[0]}


def recommend(stage_demand: dict[str, float], gains: dict[str, float], rate: float, utilisation: float,
              orchestrator_slots: int) -> dict[str, int]:
    """Replicas per stage for `rate` requests/s at the given utilisation.

    The orchestrator and ingress hold a request for its whole duration, so they are sized by
    the requests in flight (Little's law) over the concurrent requests one replica takes.
    """
    replicas = {}
    for stage, seconds in stage_demand.items():
        if stage in ("SearchOrchestrator", "TTSIngress"):
            in_flight = rate * stage_demand["TTSIngress"]
            replicas[stage] = max(1, math.ceil(in_flight / orchestrator_slots / utilisation))
        else:
            replicas[stage] = max(1, math.ceil(rate * seconds / gains[stage] / utilisation))
    return replicas


def capacity(stage_demand: dict[str, float], gains: dict[str, float], replicas: dict[str, int]) -> float:
    """Requests/s at which the first model stage saturates."""
    return min(replicas.get(stage, 1) * gains[stage] / seconds
               for stage, seconds in stage_demand.items()
               if stage not in ("SearchOrchestrator", "TTSIngress") and seconds > 0)


def autoscaled(stage: str) -> bool:
    """The stateless, batched stages. The LM keeps fixed replicas (a search's KV cache lives on
    one; scaling down ends its live searches) and so do the ingress and orchestrator (they hold
    every request for its whole duration)."""
    return stage == "CodecDecoder" or stage.startswith("Verifier-")


def overlay(replicas: dict[str, int], autoscaling: bool) -> dict:
    """A serve_config overlay: per-deployment scaling for application `llasa`; with `autoscaling`,
    the stateless stages scale between 1 and the recommended count."""
    deployments = []
    for name, count in sorted(replicas.items()):
        if autoscaling and autoscaled(name):
            deployments.append({"name": name, "autoscaling_config": {
                "min_replicas": 1, "max_replicas": count, "target_ongoing_requests": 2}})
        else:
            deployments.append({"name": name, "num_replicas": count})
    return {"applications": [{"name": APPLICATION, "deployments": deployments}]}


def apply_overlay(config: dict, overlay: dict) -> dict:
    """`config` (a serve_config) with the overlay's per-deployment settings applied, ready to deploy.
    Serve refuses num_replicas beside autoscaling_config, so whichever the overlay sets replaces the
    other; an autoscaling_config is merged into the config's own (its delays and look-back stay)."""
    merged = copy.deepcopy(config)
    for app_overlay in overlay["applications"]:
        app = next(a for a in merged["applications"] if a["name"] == app_overlay["name"])
        deployments = {d["name"]: d for d in app.setdefault("deployments", [])}
        for change in app_overlay["deployments"]:
            deployment = deployments.get(change["name"])
            if deployment is None:
                app["deployments"].append(deployment := {"name": change["name"]})
            if "autoscaling_config" in change:
                deployment.pop("num_replicas", None)
                deployment["autoscaling_config"] = {**deployment.get("autoscaling_config", {}),
                                                    **change["autoscaling_config"]}
            if "num_replicas" in change:
                deployment.pop("autoscaling_config", None)
                deployment["num_replicas"] = change["num_replicas"]
    return merged


def run(args) -> dict:
    import ray

    if not ray.is_initialized():
        ray.init(address=args.ray_address, namespace="serve", log_to_driver=False)
    texts = [t for t in Path(args.sentences).read_text().splitlines() if t.strip()]
    options = options_from(args)
    with TTSClient(args.target) as client:
        stage_demand, calls, spoken = demand(client, texts, options, args.probe_requests)
        gains = measure_gains(calls, spoken, args.batch)
        replicas = recommend(stage_demand, gains, args.rate, args.utilisation, args.orchestrator_slots)
        measured, deployed = verify(client, texts, options, args.verify_concurrency, args.verify_requests)
        predicted = capacity(stage_demand, gains, deployed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recommendation = overlay(replicas, args.autoscaling)
    (out / "tune_overlay.yaml").write_text(yaml.safe_dump(recommendation, sort_keys=False))
    tuned = apply_overlay(yaml.safe_load(Path(args.config).read_text()), recommendation)
    (out / "serve_config.tuned.yaml").write_text(
        f"# {args.config} with `llasa-bench tune` replicas for {args.rate:g} requests/s applied\n"
        + yaml.safe_dump(tuned, sort_keys=False))
    report = {
        "target_rps": args.rate,
        "utilisation": args.utilisation,
        "request": {"strategy": args.strategy, "n": args.n, "beam_width": args.beam_width,
                    "max_speech_tokens": args.max_speech_tokens},
        "stage_seconds_per_request": stage_demand,
        "batching_gain": gains,
        "recommended_replicas": replicas,
        "predicted_capacity_rps_recommended": capacity(stage_demand, gains, replicas),
        "deployed_replicas": deployed,
        "predicted_capacity_rps_deployed": predicted,
        "measured_throughput_rps_deployed": measured["throughput_rps"],
        "measured_latency_p50": measured["latency_p50"],
        "verify_concurrency": args.verify_concurrency,
    }
    (out / "tune.json").write_text(json.dumps(report, indent=2))
    print(f"{'stage':>20}{'s/request':>11}{'batch gain':>12}{'deployed':>10}{'recommended':>13}")
    for stage, seconds in stage_demand.items():
        print(f"{stage:>20}{seconds:>11.3f}{gains[stage]:>12.2f}{deployed.get(stage, 0):>10.2f}{replicas[stage]:>13}")
    print(f"target {args.rate:g} req/s: recommended replicas predict {report['predicted_capacity_rps_recommended']:.2f} "
          f"req/s; deployed replicas predict {predicted:.2f} req/s, measured {measured['throughput_rps']:.2f} req/s "
          f"(ratio {measured['throughput_rps'] / predicted:.2f})")
    return report
