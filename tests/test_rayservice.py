"""examples/rayservice.yaml: its embedded Serve config is one Ray Serve 2.60 accepts and this app
builds, and each stage lands on a worker group that advertises its resource and has the GPUs
its replicas ask for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from deployments.app import verifier_deployment_name
from deployments.config import LlasaAppArgs

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rayservice.yaml"


@pytest.fixture(scope="module")
def service() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture(scope="module")
def serve_config(service) -> ServeDeploySchema:
    return ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))


def test_kind_and_ray_version(service):
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    pinned = next(line for line in (EXAMPLE.parent.parent / "pyproject.toml").read_text().splitlines()
                  if '"ray[serve]==' in line)
    assert service["spec"]["rayClusterConfig"]["rayVersion"] in pinned


def test_serve_config_names_exactly_the_deployments_the_app_builds(serve_config):
    app = serve_config.applications[0]
    args = LlasaAppArgs.model_validate(app.args)  # the builder's own argument model
    built = {"TTSIngress", "SearchOrchestrator", "LMSampler", "CodecDecoder"} | {
        verifier_deployment_name(v.name) for v in args.verifiers}
    assert {d.name for d in app.deployments} == built
    assert app.import_path == "deployments.app:build_app"


def _groups(service) -> dict[str, tuple[dict, float]]:
    """worker group -> (its custom resources per pod, its GPUs per pod)"""
    groups = {}
    for group in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        resources = json.loads(json.loads(group["rayStartParams"]["resources"]))
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        groups[group["groupName"]] = (resources, float(limits.get("nvidia.com/gpu", 0)))
    return groups


def test_each_stage_runs_on_its_own_worker_group_that_fits_it(service, serve_config):
    groups = _groups(service)
    placed: dict[str, list] = {}
    for deployment in serve_config.applications[0].deployments:
        options = deployment.ray_actor_options
        (resource,) = options.resources  # exactly one placement resource
        owners = [name for name, (resources, _) in groups.items() if resource in resources]
        assert len(owners) == 1, (deployment.name, owners)
        placed.setdefault(owners[0], []).append(deployment)
    for group, deployments in placed.items():
        resources, gpus = groups[group]
        units = sum(resources.values())
        asks = [d.ray_actor_options.num_gpus or 0 for d in deployments]
        # a pod full of the hungriest replica this group hosts still has the GPUs it asks for
        assert units * max(asks) <= gpus, (group, units, asks, gpus)
    gpu_stages = {d.name for d in serve_config.applications[0].deployments if d.ray_actor_options.num_gpus}
    assert gpu_stages == {"LMSampler", "CodecDecoder", "Verifier-asr", "Verifier-speaker"}
    # the LM, the codec and the verifiers never share a worker group
    homes = {d.name: g for g, ds in placed.items() for d in ds}
    assert len({homes["LMSampler"], homes["CodecDecoder"], homes["Verifier-asr"]}) == 3
