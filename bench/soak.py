"""Soak test (not in CI): sustained load with random replica kills, then a count of every answer.

    .venv/bin/python bench/soak.py --duration 300 --rate 0.5 --fault-every 30

Without --address it starts its own private Ray cluster and `serve run` of serve_config.yaml as the
tests change it (two LM replicas, a queue of 4 running + 8 waiting searches, short stage
timeouts), and stays a Ray driver so it can kill replicas. With --address it loads a running
service and kills replicas of the Ray cluster at --ray-address (default: auto).

Requests go out open loop at --rate per second (a mix of best-of-N and beam searches, some
allowing partial verifiers), each with a server timeout of --request-timeout seconds and no
client deadline. Every --fault-every seconds one replica of a random stage is killed (ray.kill,
Serve restarts it). At the end it waits for the requests in flight (request timeout + --grace)
and prints: requests sent, answered OK, failed by status, and lost. A lost request is one with no
answer at all by then (a hang); the service's contract is that there are none.

    .venv/bin/python bench/soak.py --two-node --duration 150 --rate 0.5 --fault-every 0 \
        --node-down-at 40 --node-up-at 90

--two-node runs the service on a two-node Ray cluster on this machine (a head and a second raylet
with its own CPUs, Ray's own `ray.cluster_utils.Cluster`). Every stage runs two replicas, which
Serve spreads over both nodes; the LM's are placed one per node (each node has one `soak_lm_slot`
resource, each LM replica takes one), and the ingress and the orchestrator (one replica each,
whose loss is another experiment) stay on the head. A few long beam searches (--long-searches of
--long-tokens speech tokens, 2 s apart from 2 s before --node-down-at) join the load, and from
--node-down-at on the worker node dies whole (its raylet and every replica on it) as soon as its
LM replica holds a live search session (probed twice a second, for at most 30 s), so the loss of
LM state is exercised every run. At --node-up-at a fresh node joins. Codec and verifier calls are
repeated on the surviving replicas; a search whose LM session died with the node ends UNAVAILABLE
with a retry hint; the rest end OK (or RESOURCE_EXHAUSTED when the bounded queue is full). It
prints the answers by phase (sent before the loss, while the node was down, after it returned),
the recovery time (node joined -> every stage at its replica count) and how many generate calls
the new node's LM replica served. Measured figures: deployments/README.md "Two nodes, one of them
lost".
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import free_port, start_serve_run, stop_serve_run, test_config, wait_until_up  # noqa: E402

from llasa_client import SynthesisOptions, TTSClient, TTSError  # noqa: E402

VICTIMS = ("LMSampler", "CodecDecoder", "Verifier-asr", "Verifier-speaker")
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Soak tests find what unit tests miss.",
         "Every request must end.", "A replica died; the search went on.", "Short one."]
LONG_TEXT = "This search is long on purpose, so that it is still running when its node goes away."
LM_SLOT, HEAD = "soak_lm_slot", "soak_head"  # --two-node: custom resources that place the replicas


def request_mix(rng: random.Random, timeout: float) -> SynthesisOptions:
    common = dict(seed=rng.randrange(1 << 30), timeout_seconds=timeout, step_tokens=10,
                  max_speech_tokens=rng.choice([20, 40, 60]), allow_partial_verifiers=rng.random() < 0.5)
    if rng.random() < 0.5:
        return SynthesisOptions(strategy="best_of_n", n=2, outcome_verifiers={"asr": 1.0, "speaker": 1.0}, **common)
    return SynthesisOptions(strategy="beam", n=4, beam_width=2, process_verifiers={"speaker": 1.0},
                            outcome_verifiers={"asr": 1.0}, **common) if rng.random() < 0.5 else \
        SynthesisOptions(strategy="beam", n=2, beam_width=2, process_verifiers={"speaker": 1.0}, **common)


def kill_random_replica(rng: random.Random, victims: tuple[str, ...]) -> str:
    import ray

    deployment = rng.choice(victims)
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{deployment}#" in a["name"]]
    if not replicas:
        return f"{deployment}: no live replica"
    actor = rng.choice(replicas)
    try:
        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
    except ValueError:
        return f"{deployment}: already gone"
    return f"{deployment} replica {actor['name'].rsplit('#', 1)[-1]}"


def placement() -> dict[str, collections.Counter]:
    """Live replicas of each deployment, counted per node (the first 8 hex digits of its id).

    Ray's public state API needs the dashboard, which this cluster does not run; the GCS actor
    table it reads is `ray._private.state.actors` (Ray is pinned in pyproject.toml)."""
    from ray._private.state import actors

    where: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for actor in actors(actor_state_name="ALIVE").values():
        name = actor.get("Name") or ""
        if name.startswith("SERVE_REPLICA::"):
            where[name.split("#")[1]][actor["Address"]["NodeID"][:8]] += 1
    return dict(sorted(where.items()))


def replica_nodes(deployment: str) -> dict[str, str]:
    """Live replicas of `deployment`: replica id -> node id (from the GCS actor table, as placement())."""
    from ray._private.state import actors

    found = {}
    for actor in actors(actor_state_name="ALIVE").values():
        parts = (actor.get("Name") or "").split("#")
        if parts[0].startswith("SERVE_REPLICA::") and len(parts) == 3 and parts[1] == deployment:
            found[parts[2]] = actor["Address"]["NodeID"]
    return found


def lm_counters_on(node_id: str) -> dict | None:
    """The counters of the LM replica on `node_id` (live `sessions`, `calls`), or None if none runs
    there. Unpinned probes reach a random replica, so a few find it."""
    from ray import serve

    replicas = {replica for replica, node in replica_nodes("LMSampler").items() if node == node_id}
    if not replicas:
        return None
    handle = serve.get_deployment_handle("LMSampler", app_name="llasa")
    for i in range(24):
        counters = handle.options(session_id=f"soak-probe-{i}").counters.remote().result(timeout_s=10)
        if counters["replica"] in replicas:
            return counters
    return None


def long_search(rng: random.Random, args) -> SynthesisOptions:
    """A search that runs for a while, in flight when the node dies: the tiny random LM never stops
    early, and a beam step every 10 tokens calls the LM, the codec and a verifier in turn."""
    return SynthesisOptions(strategy="beam", n=4, beam_width=2, step_tokens=10, max_speech_tokens=args.long_tokens,
                            process_verifiers={"speaker": 1.0}, seed=rng.randrange(1 << 30),
                            timeout_seconds=args.request_timeout)


def soak(address: str, args, node_faults=None, long_at: tuple[float, ...] = ()) -> dict:
    """Open-loop load (and the long searches at `long_at` seconds); `node_faults` are (due s,
    fire) where fire() says what it did, or None for "not yet" (asked again on the next tick)."""
    rng = random.Random(args.seed)
    client = TTSClient(address, api_key=args.api_key)
    pool = concurrent.futures.ThreadPoolExecutor(args.max_in_flight)
    futures: list[tuple[concurrent.futures.Future, float, str]] = []  # (answer, sent at s, kind)
    faults: list[str] = []
    fault_times: list[float] = []
    latencies: list[float] = []
    hints: list[str] = []  # UNAVAILABLE answers: when, and what they said
    lock = threading.Lock()

    def one(text: str, options: SynthesisOptions) -> str:
        started = time.monotonic()
        try:
            response = client.synthesize(text, options)
        except TTSError as err:
            if err.code.name != "UNAVAILABLE":
                return err.code.name
            with lock:
                hints.append(f"answered {time.monotonic() - soak_started:.1f} s in: {err.details or ''}")
            return "UNAVAILABLE" + (" (says retry)" if "retry" in (err.details or "").lower() else " (no retry hint)")
        with lock:
            latencies.append(time.monotonic() - started)
        return "OK" + ("(partial verifiers)" if response.verifiers_failed else "")

    started = soak_started = time.monotonic()
    next_fault = started + args.fault_every if args.fault_every > 0 else float("inf")
    next_report = started + 30
    long_due = sorted(long_at)
    sent = 0
    while (now := time.monotonic()) < started + args.duration:
        due = started + sent / args.rate
        if now >= due:
            futures.append((pool.submit(one, TEXTS[sent % len(TEXTS)], request_mix(rng, args.request_timeout)),
                            now - started, "load"))
            sent += 1
        while long_due and now - started >= long_due[0]:
            long_due.pop(0)
            futures.append((pool.submit(one, LONG_TEXT, long_search(rng, args)), now - started, "long"))
            sent += 1
        if now >= next_fault:
            faults.append(f"{now - started:6.1f} s  killed {kill_random_replica(rng, tuple(args.victims))}")
            print(faults[-1], flush=True)
            next_fault += args.fault_every
        while node_faults and now - started >= node_faults[0][0]:
            said = node_faults[0][1]()
            if said is None:
                break
            node_faults.pop(0)
            fault_times.append(now - started)
            faults.append(f"{now - started:6.1f} s  {said}")
            print(faults[-1], flush=True)
        if now >= next_report:
            done = sum(f.done() for f, _, _ in futures)
            print(f"{now - started:6.1f} s  sent {sent}, answered {done}, in flight {sent - done}", flush=True)
            next_report += 30
        time.sleep(min(0.05, max(0.0, min(due, next_fault) - time.monotonic())))
    concurrent.futures.wait([f for f, _, _ in futures], timeout=args.request_timeout + args.grace)
    answers = [(f.result() if f.done() else "lost (no answer)", at, kind) for f, at, kind in futures]
    outcome = collections.Counter(answer for answer, _, _ in answers if not answer.startswith("lost"))
    phases: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    names = ["before the node died", "node down", "after the node returned"]
    for answer, at, kind in answers:
        phase = names[sum(at >= t for t in fault_times)] if fault_times else "all"
        phases[phase][answer + (" [long]" if kind == "long" else "")] += 1
    lost = sum(not f.done() for f, _, _ in futures)
    for f, _, _ in futures:
        f.cancel()
    pool.shutdown(wait=False, cancel_futures=True)
    client.close()
    return {"sent": sent, "outcome": outcome, "lost": lost, "faults": faults, "latencies": latencies,
            "seconds": time.monotonic() - started, "phases": dict(phases), "hints": hints}


def wait_running(deployments: list[dict], timeout: float = 300) -> None:
    """Until every deployment runs the replicas the config asks for."""
    from ray import serve

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app = serve.status().applications.get("llasa")
        if app and all(app.deployments[d["name"]].replica_states.get("RUNNING", 0) >= d.get("num_replicas", 1)
                       for d in deployments if d["name"] in app.deployments):
            return
        time.sleep(1)
    raise TimeoutError("the deployments did not reach their replica counts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--rate", type=float, default=0.5, help="requests per second (open loop)")
    parser.add_argument("--fault-every", type=float, default=30, help="seconds between replica kills (0: none)")
    parser.add_argument("--victims", nargs="+", default=list(VICTIMS), help="deployments whose replicas may die")
    parser.add_argument("--request-timeout", type=float, default=60, help="each request's timeout_seconds")
    parser.add_argument("--grace", type=float, default=30, help="extra wait for answers after the load")
    parser.add_argument("--max-in-flight", type=int, default=256, help="client threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--address", help="a running service (else start one on a private cluster)")
    parser.add_argument("--ray-address", default="auto", help="with --address: the cluster to inject faults into")
    parser.add_argument("--api-key", help="for a service that requires one (default: $LLASA_API_KEY)")
    parser.add_argument("--two-node", action="store_true", help="a head and a worker node on this machine (above)")
    parser.add_argument("--node-down-at", type=float, default=40, help="--two-node: seconds in, the worker node dies")
    parser.add_argument("--node-up-at", type=float, default=90, help="--two-node: seconds in, a new node joins")
    parser.add_argument("--long-searches", type=int, default=3, help="--two-node: long searches before the loss")
    parser.add_argument("--long-tokens", type=int, default=1000, help="--two-node: speech tokens of each")
    args = parser.parse_args()

    import ray

    process = None
    if args.address:
        ray.init(address=args.ray_address, namespace="serve", log_to_driver=False)
        address = args.address
    else:
        work = Path(tempfile.mkdtemp(prefix="soak-"))
        grpc_port, http_port = free_port(), free_port()
        config = test_config(yaml.safe_load((ROOT / "serve_config.yaml").read_text()), grpc_port, http_port)
        (work / "serve_config.yaml").write_text(yaml.safe_dump(config))
        os.environ.setdefault("RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", str(4 << 20))
        if args.two_node:
            from ray.cluster_utils import Cluster

            for deployment in config["applications"][0]["deployments"]:
                options = deployment.setdefault("ray_actor_options", {})
                if deployment["name"] in ("TTSIngress", "SearchOrchestrator"):
                    options["resources"] = {HEAD: 0.01}
                    continue
                deployment.pop("autoscaling_config", None)
                deployment["num_replicas"] = 2
                if deployment["name"] == "LMSampler":
                    options["resources"] = {LM_SLOT: 1}
            (work / "serve_config.yaml").write_text(yaml.safe_dump(config))
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False,
                                                                   "resources": {LM_SLOT: 1, HEAD: 1}})
            worker = [cluster.add_node(num_cpus=2, resources={LM_SLOT: 1})]
            gcs_address = cluster.address
            ray.init(address=gcs_address, namespace="serve", log_to_driver=False, configure_logging=False)
            down = {"give_up": None, "probed": 0.0}
            recovery: dict[str, float] = {}

            def node_down() -> str | None:
                """Once the worker's LM replica holds a live session (probed twice a second, for at
                most 30 s): the node dies."""
                now = time.monotonic()
                down["give_up"] = down["give_up"] or now + 30
                if now - down["probed"] < 0.5:
                    return None
                down["probed"] = now
                sessions = (lm_counters_on(worker[0].node_id) or {}).get("sessions", 0)
                if sessions == 0 and now < down["give_up"]:
                    return None
                cluster.remove_node(worker.pop(), allow_graceful=False)
                return (f"worker node killed (raylet and every replica on it); its LM replica held {sessions} "
                        "live search sessions")

            def time_recovery(joined: float) -> None:
                wait_running(list(config["applications"][0]["deployments"]))
                recovery["seconds"] = time.monotonic() - joined

            def node_up() -> str:
                joined = time.monotonic()
                worker.append(cluster.add_node(num_cpus=2, resources={LM_SLOT: 1}))
                threading.Thread(target=time_recovery, args=(joined,), daemon=True).start()
                return "a new worker node joined"
        else:
            gcs_address = ray.init(num_cpus=4, include_dashboard=False, namespace="serve", log_to_driver=False,
                                   configure_logging=False).address_info["gcs_address"]
        process = start_serve_run(work / "serve_config.yaml", work / "serve.log",
                                  {**os.environ, "RAY_ADDRESS": gcs_address})
        address = f"127.0.0.1:{grpc_port}"
        print(f"service log: {work / 'serve.log'}", flush=True)
    try:
        wait_until_up(address, process)
        node_faults, long_at = None, ()
        if args.two_node:
            wait_running(list(config["applications"][0]["deployments"]))
            print("replicas per node:", {d: dict(c) for d, c in placement().items()},
                  f"(worker {worker[0].node_id[:8]})", flush=True)
            node_faults = [(args.node_down_at, node_down), (args.node_up_at, node_up)]
            long_at = tuple(args.node_down_at - 2 + 2 * k for k in range(args.long_searches))
        result = soak(address, args, node_faults, long_at)
        if args.two_node:
            wait_running(list(config["applications"][0]["deployments"]))
            print("replicas per node at the end:", {d: dict(c) for d, c in placement().items()},
                  f"(new worker {worker[0].node_id[:8]})" if worker else "", flush=True)
            result["new_lm_calls"] = (lm_counters_on(worker[0].node_id) or {}).get("calls", 0) if worker else 0
            result["recovery_seconds"] = recovery.get("seconds")
    finally:
        if process is not None:
            from ray import serve

            stop_serve_run(process)
            serve.shutdown()
        ray.shutdown()
        if args.two_node and not args.address:
            cluster.shutdown()

    outcome, latencies = result["outcome"], result["latencies"]
    answered = sum(outcome.values())
    kills = (f"a replica of {', '.join(args.victims)} killed every {args.fault_every:g} s" if args.fault_every > 0
             else "no replica kills")
    print(f"\nsoak: {args.duration:.0f} s at {args.rate} req/s, {kills}, {len(result['faults'])} faults, "
          f"{os.cpu_count()} CPU cores"
          + (f", two nodes (worker down at {args.node_down_at:g} s, back at {args.node_up_at:g} s)"
             if args.two_node else ""))
    print(f"  requests sent        {result['sent']}")
    print(f"  answered             {answered}")
    for status, count in sorted(outcome.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {status:26s} {count}")
    print(f"  lost (no answer)     {result['lost']}")
    for phase, counts in result["phases"].items() if args.two_node else ():
        print(f"  {phase}: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    if result["hints"]:
        print(f"  an UNAVAILABLE message: {result['hints'][0][:300]}")
    if args.two_node:
        seconds = result.get("recovery_seconds")
        print(f"  recovery: every stage at its replica count {seconds:.1f} s after the node joined; "
              if seconds is not None else "  recovery: not timed; ", end="")
        print(f"the new node's LM replica served {result.get('new_lm_calls', 0)} generate calls")
    if latencies:
        q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
        print(f"  OK latency s         median {statistics.median(latencies):.2f}, p95 {q[18]:.2f}, "
              f"max {max(latencies):.2f}")
    undocumented = [status for status in outcome if status.split()[0].split("(")[0] in ("INTERNAL", "UNKNOWN")]
    return 0 if result["lost"] == 0 and not undocumented else 1


if __name__ == "__main__":
    sys.exit(main())
