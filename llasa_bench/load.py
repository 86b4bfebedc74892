"""`llasa-bench load`: latency and throughput of a running service under gRPC load.

Open loop sends requests at a fixed rate whatever the service does (latency is measured from the
moment a request was due, so a slow server cannot hide its queue); closed loop keeps a fixed
number of requests in flight. Each answered request reports its per-stage times (the compute
account); Ray Serve's own per-deployment processing latency is scraped from its Prometheus
endpoint when `--metrics-url` is given.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from llasa_client.client import SynthesisOptions, TTSClient, TTSError


@dataclass
class Outcome:
    due: float  # seconds after the run started when the request was (to be) sent
    latency: float
    status: str
    stage_seconds: dict[str, float]


def stage_seconds(response) -> dict[str, float]:
    """Per-stage wall seconds of one answered request, from its compute account and timings."""
    account = response.account
    stages = {"lm": account.lm.seconds, "codec": account.codec.seconds,
              "search": response.timings.search_seconds, "total": response.timings.total_seconds}
    for name, verifier in account.verifiers.items():
        stages[f"verifier_{name}"] = verifier.seconds
    return stages


def one_request(client: TTSClient, text: str, options: SynthesisOptions, due: float, start: float,
                timeout: float) -> Outcome:
    try:
        response = client.synthesize(text, options, timeout=timeout)
        status, stages = "OK", stage_seconds(response)
    except TTSError as err:
        status, stages = err.code.name, {}
    return Outcome(due, time.perf_counter() - start - due, status, stages)


def open_loop(client, texts, options, rate: float, duration: float, timeout: float) -> list[Outcome]:
    """Requests due every 1/rate seconds for `duration` seconds, each on its own thread."""
    count = max(1, int(rate * duration))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(count, 256)) as pool:
        futures = []
        for i in tqdm(range(count), desc=f"open loop {rate:g}/s", unit="req"):
            due = i / rate
            time.sleep(max(0.0, start + due - time.perf_counter()))
            futures.append(pool.submit(one_request, client, texts[i % len(texts)], options, due, start, timeout))
        return [f.result() for f in futures]


def closed_loop(client, texts, options, concurrency: int, requests: int, timeout: float) -> list[Outcome]:
    """`concurrency` workers, each sending its next request as soon as the last one returns."""
    start = time.perf_counter()
    counter = iter(range(requests))
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    progress = tqdm(total=requests, desc=f"closed loop x{concurrency}", unit="req")

    def worker():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            outcome = one_request(client, texts[i % len(texts)], options, time.perf_counter() - start, start, timeout)
            with lock:
                outcomes.append(outcome)
                progress.update()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress.close()
    return outcomes


def summarise(label: str, offered: float | None, outcomes: list[Outcome]) -> dict:
    """Throughput over the span from the first due time to the last answer; latency percentiles."""
    ok = [o for o in outcomes if o.status == "OK"]
    span = max(o.due + o.latency for o in outcomes) - min(o.due for o in outcomes)
    latencies = np.array([o.latency for o in ok]) if ok else np.array([np.nan])
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.status != "OK":
            errors[o.status] = errors.get(o.status, 0) + 1
    stages = sorted({k for o in ok for k in o.stage_seconds})
    return {
        "setting": label,
        "offered_rps": offered,
        "requests": len(outcomes),
        "ok": len(ok),
        "throughput_rps": len(ok) / span if span > 0 else float("nan"),
        "latency_p50": float(np.percentile(latencies, 50)),
        "latency_p95": float(np.percentile(latencies, 95)),
        "latency_p99": float(np.percentile(latencies, 99)),
        "errors": errors,
        **{f"mean_{k}_seconds": float(np.mean([o.stage_seconds.get(k, 0.0) for o in ok])) for k in stages},
    }


def scrape_serve_latency(metrics_url: str) -> dict[str, tuple[float, float]]:
    """(sum ms, count) of Ray Serve's per-deployment processing latency, from Prometheus text."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, list[float]] = {}
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        if not family.name.endswith("serve_deployment_processing_latency_ms"):
            continue
        for sample in family.samples:
            deployment = sample.labels.get("deployment", "?")
            entry = totals.setdefault(deployment, [0.0, 0.0])
            if sample.name.endswith("_sum"):
                entry[0] += sample.value
            elif sample.name.endswith("_count"):
                entry[1] += sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def serve_latency_delta(before, after) -> dict[str, float]:
    """Mean processing ms per call of each deployment between two scrapes."""
    out = {}
    for deployment, (total, count) in after.items():
        total0, count0 = before.get(deployment, (0.0, 0.0))
        if count > count0:
            out[deployment] = (total - total0) / (count - count0)
    return out


def write_outputs(out: Path, outcomes_by_setting: dict[str, list[Outcome]], summaries: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "load_requests.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "due_s", "latency_s", "status"])
        for label, outcomes in outcomes_by_setting.items():
            for o in outcomes:
                writer.writerow([label, f"{o.due:.4f}", f"{o.latency:.4f}", o.status])
    flat = [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in s.items()} for s in summaries]
    columns = list(dict.fromkeys(k for s in flat for k in s))
    with (out / "load_summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
    (out / "load.json").write_text(json.dumps(summaries, indent=2))


def plot(summaries: list[dict], path: Path) -> None:
    """Latency percentiles against offered (open loop) or achieved (closed loop) load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [s["offered_rps"] if s["offered_rps"] is not None else s["throughput_rps"] for s in summaries]
    fig, axis = plt.subplots(figsize=(5.5, 3.6))
    for key in ("latency_p50", "latency_p95", "latency_p99"):
        axis.plot(x, [s[key] for s in summaries], marker="o", label=key.removeprefix("latency_"))
    axis.set_xlabel("offered load (requests/s)" if summaries[0]["offered_rps"] is not None
                    else "throughput (requests/s)")
    axis.set_ylabel("latency (s)")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def options_from(args) -> SynthesisOptions:
    return SynthesisOptions(strategy=args.strategy, n=args.n, beam_width=args.beam_width,
                            max_speech_tokens=args.max_speech_tokens, seed=args.seed)


def run(args) -> list[dict]:
    texts = [t for t in Path(args.sentences).read_text().splitlines() if t.strip()]
    options = options_from(args)
    outcomes_by_setting: dict[str, list[Outcome]] = {}
    summaries = []
    with TTSClient(args.target) as client:
        settings = ([("open", float(r)) for r in args.rates.split(",")] if args.mode == "open"
                    else [("closed", int(c)) for c in args.concurrency.split(",")])
        for mode, value in settings:
            before = scrape_serve_latency(args.metrics_url) if args.metrics_url else None
            if mode == "open":
                outcomes = open_loop(client, texts, options, value, args.duration, args.timeout)
                label, offered = f"open@{value:g}rps", value
            else:
                outcomes = closed_loop(client, texts, options, value, args.requests, args.timeout)
                label, offered = f"closed@{value}", None
            summary = summarise(label, offered, outcomes)
            if before is not None:
                summary["serve_processing_ms"] = serve_latency_delta(before, scrape_serve_latency(args.metrics_url))
            outcomes_by_setting[label] = outcomes
            summaries.append(summary)
            print(f"{label:>16}: {summary['ok']}/{summary['requests']} ok, {summary['throughput_rps']:.2f} req/s, "
                  f"p50 {summary['latency_p50']:.2f}s p95 {summary['latency_p95']:.2f}s "
                  f"p99 {summary['latency_p99']:.2f}s, errors {summary['errors']}")
    out = Path(args.out)
    write_outputs(out, outcomes_by_setting, summaries)
    plot(summaries, out / "load.png")
    return summaries
