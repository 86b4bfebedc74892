"""What needs no cluster: generated modules in sync with the .proto, valid Serve configs."""

from __future__ import annotations

import pytest

from protos.generate import ROOT, generate


def test_generated_modules_are_in_sync(tmp_path):
    for fresh in generate(tmp_path):
        checked_in = ROOT / fresh.relative_to(tmp_path)
        assert checked_in.read_text() == fresh.read_text(), (
            f"{checked_in.relative_to(ROOT)} is out of date: run `python -m protos.generate` and commit the result")


def test_method_names_do_not_shadow_the_serve_proxys_own():
    """Ray Serve's gRPC proxy routes by method name alone, its own service's methods included."""
    from protos.llasa.tts.v1 import tts_pb2

    ours = {m.name for m in tts_pb2.DESCRIPTOR.services_by_name["TTSService"].methods}
    assert not ours & {"ListApplications", "Healthz"}


def test_lm_quantize_and_compile_are_refused_where_they_do_not_run():
    from pydantic import ValidationError

    from deployments.config import LMArgs

    assert LMArgs(quantize="int8").quantize == "int8"
    for bad in ({"device": "cuda"}, {"dtype": "bfloat16"}, {"backend": "vllm"}):
        with pytest.raises(ValidationError, match="lm.quantize"):
            LMArgs(quantize="int8", **bad)
    assert LMArgs(compile_one_row=True, device="cuda").compile_one_row
    with pytest.raises(ValidationError, match="lm.compile_one_row"):
        LMArgs(compile_one_row=True, backend="vllm")


def test_both_serve_configs_parse():
    """serve_config.yaml and the GPU example are valid Serve configs with valid typed args."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from deployments.app import verifier_deployment_name
    from deployments.config import LlasaAppArgs

    for path in (ROOT / "serve_config.yaml", ROOT / "examples" / "serve_config.gpu.yaml"):
        config = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
        app = config.applications[0]
        args = LlasaAppArgs.model_validate(app.args)
        expected = {"TTSIngress", "SearchOrchestrator", "LMSampler", "CodecDecoder"}
        expected |= {verifier_deployment_name(v.name) for v in args.verifiers}
        assert {d.name for d in app.deployments} == expected, path
        assert config.grpc_options.grpc_servicer_functions == [
            "protos.llasa.tts.v1.tts_pb2_grpc.add_TTSServiceServicer_to_server"]
