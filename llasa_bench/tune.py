"""`llasa-bench tune`: how many replicas each stage needs for a target load.

1. Demand: requests at concurrency 1 through gRPC; each response's compute account gives the
   seconds every stage spent on it (D_s, per request).
2. Batching gain: the codec and verifier deployments merge concurrent calls (@serve.batch). On
   the running service, time one call alone and `--batch` concurrent calls of the same size
   through Ray Serve handles; gain_s = batch * t(1) / t(batch). A batched stage's demand under
   load is D_s / gain_s. The LM does not batch across requests: gain 1.
3. Replicas: r_s = ceil(rate * D_s / gain_s / utilisation). The predicted capacity of a set of
   replicas is min_s r_s * gain_s / D_s requests/s (the slowest stage saturates first).
4. Verification: a closed-loop load run at saturation on the service as deployed; the report sets
   its measured throughput beside the capacity predicted for the replicas that are running.
   Apply the overlay (`serve deploy` of serve_config.yaml merged with it) and run tune again to
   verify the recommendation itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
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


def demand(client: TTSClient, texts: list[str], options, requests: int) -> tuple[dict[str, float], dict, np.ndarray]:
    """Mean stage seconds per request at concurrency 1, one sample response, and its audio."""
    per_stage: dict[str, list[float]] = {}
    response = None
    for i in range(requests):
        response = client.synthesize(texts[i % len(texts)], options, timeout=600)
        for stage, seconds in stage_seconds(response).items():
            per_stage.setdefault(deployment_of(stage), []).append(seconds)
    account = response.account
    calls = {"codec_items": account.codec.items / max(1, account.codec.calls),
             "verifier_items": {n: v.items / max(1, v.calls) for n, v in account.verifiers.items()},
             "codes_per_item": max(1, int(response.chosen.num_tokens))}
    return {k: statistics.mean(v) for k, v in per_stage.items()}, calls, read_audio(response.audio)


async def _timed(make_calls) -> float:
    started = time.perf_counter()
    await asyncio.gather(*make_calls())
    return time.perf_counter() - started


async def batching_gain(handle, method: str, args, batch: int, repeats: int = 3) -> float:
    """batch * t(one call) / t(batch concurrent calls), medians over repeats."""
    call = getattr(handle, method)
    await call.remote(*args)  # warm up
    alone = statistics.median([await _timed(lambda: [call.remote(*args)]) for _ in range(repeats)])
    together = statistics.median([await _timed(lambda: [call.remote(*args) for _ in range(batch)])
                                  for _ in range(repeats)])
    return max(1.0, batch * alone / together)


def measure_gains(calls: dict, audio: np.ndarray, text: str, batch: int) -> dict[str, float]:
    from ray import serve

    from llasa_core.stages import ScoreContext

    async def measure():
        gains = {"LMSampler": 1.0, "SearchOrchestrator": 1.0, "TTSIngress": 1.0}
        codec = serve.get_deployment_handle("CodecDecoder", app_name=APPLICATION)
        items = max(1, round(calls["codec_items"]))
        codes = [[0] * calls["codes_per_item"]] * items
        gains["CodecDecoder"] = await batching_gain(codec, "decode", (codes,), batch)
        for name, per_call in calls["verifier_items"].items():
            deployment = verifier_deployment_name(name)
            verifier = serve.get_deployment_handle(deployment, app_name=APPLICATION)
            n = max(1, round(per_call))
            gains[deployment] = await batching_gain(
                verifier, "score", ([audio] * n, [ScoreContext(text=text)] * n), batch)
        return gains

    return asyncio.run(measure())


def running_replicas() -> dict[str, int]:
    from ray import serve

    status = serve.status().applications[APPLICATION]
    return {name: int(d.replica_states.get("RUNNING", 0)) for name, d in status.deployments.items()}


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


def overlay(replicas: dict[str, int], autoscaling: bool) -> dict:
    """A serve_config overlay: per-deployment scaling for application `llasa`."""
    deployments = []
    for name, count in sorted(replicas.items()):
        if autoscaling and name not in ("TTSIngress",):
            deployments.append({"name": name, "autoscaling_config": {
                "min_replicas": 1, "initial_replicas": max(1, count // 2), "max_replicas": count,
                "target_ongoing_requests": 2}})
        else:
            deployments.append({"name": name, "num_replicas": count})
    return {"applications": [{"name": APPLICATION, "deployments": deployments}]}


def run(args) -> dict:
    import ray

    if not ray.is_initialized():
        ray.init(address=args.ray_address, namespace="serve", log_to_driver=False)
    texts = [t for t in Path(args.sentences).read_text().splitlines() if t.strip()]
    options = options_from(args)
    with TTSClient(args.target) as client:
        stage_demand, calls, audio = demand(client, texts, options, args.probe_requests)
        gains = measure_gains(calls, audio, texts[0], args.batch)
        replicas = recommend(stage_demand, gains, args.rate, args.utilisation, args.orchestrator_slots)
        deployed = running_replicas()
        predicted = capacity(stage_demand, gains, deployed)
        measured = summarise("verify", None, closed_loop(client, texts, options, args.verify_concurrency,
                                                          args.verify_requests, timeout=600))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune_overlay.yaml").write_text(yaml.safe_dump(overlay(replicas, args.autoscaling), sort_keys=False))
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
        print(f"{stage:>20}{seconds:>11.3f}{gains[stage]:>12.2f}{deployed.get(stage, 0):>10}{replicas[stage]:>13}")
    print(f"target {args.rate:g} req/s: recommended replicas predict {report['predicted_capacity_rps_recommended']:.2f} "
          f"req/s; deployed replicas predict {predicted:.2f} req/s, measured {measured['throughput_rps']:.2f} req/s "
          f"(ratio {measured['throughput_rps'] / predicted:.2f})")
    return report
