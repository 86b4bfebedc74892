"""`llasa-bench load` and `llasa-bench tune` against the running service, on a tiny setting."""

import csv
import json
import math

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema
from serve_support import ROOT

from llasa_bench.cli import main
from llasa_bench.tune import apply_overlay, capacity, recommend
from llasa_bench.tune import overlay as tune_overlay

SMALL = ["--max-speech-tokens", "20", "-n", "2"]


@pytest.fixture
def sentences(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("Hello there.\nA second, slightly longer sentence.\n")
    return path


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_load_closed_and_open_loop(service, sentences, tmp_path):
    closed = tmp_path / "closed"
    main(["load", "--target", service.address, "--sentences", str(sentences), "--out", str(closed),
          "--mode", "closed", "--concurrency", "1,2", "--requests", "3", *SMALL])
    requests = rows(closed / "load_requests.csv")
    assert len(requests) == 6 and {r["status"] for r in requests} == {"OK"}
    summary = json.loads((closed / "load.json").read_text())
    assert [s["setting"] for s in summary] == ["closed@1", "closed@2"]
    for s in summary:
        assert s["ok"] == 3 and s["errors"] == {}
        assert 0 < s["latency_p50"] <= s["latency_p95"] <= s["latency_p99"]
        assert s["throughput_rps"] > 0
        assert 0 < s["mean_lm_seconds"] < s["mean_search_seconds"] <= s["mean_total_seconds"]
    assert (closed / "load.png").read_bytes()[:4] == b"\x89PNG"

    opened = tmp_path / "open"
    main(["load", "--target", service.address, "--sentences", str(sentences), "--out", str(opened),
          "--mode", "open", "--rates", "2", "--duration", "1.5", *SMALL])
    summary = json.loads((opened / "load.json").read_text())[0]
    assert summary["offered_rps"] == 2 and summary["requests"] == 3
    assert {"setting", "offered_rps", "throughput_rps", "latency_p99", "errors"} <= set(
        rows(opened / "load_summary.csv")[0])


def test_tune_recommends_writes_an_overlay_and_verifies(service, sentences, tmp_path):
    main(["tune", "--target", service.address, "--sentences", str(sentences), "--out", str(tmp_path),
          "--rate", "3", "--probe-requests", "1", "--batch", "4", "--verify-concurrency", "2",
          "--verify-requests", "2", "--config", str(ROOT / "serve_config.yaml"), *SMALL])
    report = json.loads((tmp_path / "tune.json").read_text())
    demand, gains = report["stage_seconds_per_request"], report["batching_gain"]
    assert {"LMSampler", "CodecDecoder", "SearchOrchestrator", "TTSIngress", "Verifier-asr"} <= set(demand)
    assert report["deployed_replicas"]["LMSampler"] >= 1
    assert report["predicted_capacity_rps_deployed"] > 0 and report["measured_throughput_rps_deployed"] > 0
    overlay = yaml.safe_load((tmp_path / "tune_overlay.yaml").read_text())
    deployments = {d["name"]: d["num_replicas"] for d in overlay["applications"][0]["deployments"]}
    for stage, replicas in deployments.items():  # r = ceil(rate * D / gain / utilisation) for model stages
        if stage not in ("SearchOrchestrator", "TTSIngress"):
            assert replicas == max(1, math.ceil(3 * demand[stage] / gains[stage] / report["utilisation"]))
    # serve_config.tuned.yaml: serve_config.yaml with those counts, deployable (the committed
    # config autoscales the codec and verifiers; a fixed count replaces their autoscaling_config)
    tuned = yaml.safe_load((tmp_path / "serve_config.tuned.yaml").read_text())
    ServeDeploySchema.model_validate(tuned)
    for deployment in tuned["applications"][0]["deployments"]:
        assert not {"num_replicas", "autoscaling_config"} <= set(deployment), deployment["name"]
        if deployment["name"] in deployments:
            assert deployment["num_replicas"] == deployments[deployment["name"]]
    # --autoscaling: the stateless stages autoscale up to the recommendation, keeping the committed
    # config's delays; the LM, orchestrator and ingress keep fixed counts
    committed = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    scaled = apply_overlay(committed, tune_overlay(report["recommended_replicas"], autoscaling=True))
    ServeDeploySchema.model_validate(scaled)
    committed_asr = next(d for d in committed["applications"][0]["deployments"] if d["name"] == "Verifier-asr")
    for deployment in scaled["applications"][0]["deployments"]:
        assert not {"num_replicas", "autoscaling_config"} <= set(deployment), deployment["name"]
        if deployment["name"] == "Verifier-asr":
            bounds = deployment["autoscaling_config"]
            assert bounds["max_replicas"] == deployments["Verifier-asr"] and bounds["min_replicas"] == 1
            assert bounds["downscale_delay_s"] == committed_asr["autoscaling_config"]["downscale_delay_s"]
        if deployment["name"] in ("LMSampler", "SearchOrchestrator", "TTSIngress"):
            assert deployment["num_replicas"] == deployments[deployment["name"]]
    # more load needs at least as many replicas, and the predicted capacity covers the target
    more = recommend(demand, gains, rate=30, utilisation=0.7, orchestrator_slots=8)
    assert all(more[s] >= deployments[s] for s in deployments) and sum(more.values()) > sum(deployments.values())
    assert capacity(demand, gains, more) >= 30


def test_quality_against_the_service(service, sentences, tmp_path):
    main(["quality", "--target", service.address, "--sentences", str(sentences), "--out", str(tmp_path),
          "--strategies", "best_of_n,dvts", "--budgets", "1,2", "--max-seconds", "0.4", "--step-tokens", "10",
          "--process-verifier", "asr", "--eval-asr", "pocketsphinx"])
    summary = {(r["strategy"], int(r["n"])): r for r in rows(tmp_path / "quality_summary.csv")}
    assert set(summary) == {("best_of_n", 1), ("best_of_n", 2), ("dvts", 2)}
    one, two = summary[("best_of_n", 1)], summary[("best_of_n", 2)]
    assert float(two["lm_generated_tokens"]) == 2 * float(one["lm_generated_tokens"]) == 40
    assert float(two["verifier_seconds"]) > float(one["verifier_seconds"])
    report = json.loads((tmp_path / "quality.json").read_text())
    assert report["evaluation"]["wer_pocketsphinx"]["eval_is_verifier"] is None  # the server's verifiers
