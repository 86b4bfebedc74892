"""`deployments.app:build_app`, the application serve_config.yaml names (no `from __future__ import
annotations`: Serve reads the builder's annotation to parse `args` into LlasaAppArgs).

The graph: TTSIngress (gRPC, and HTTP through deployments/http_ingress.py) -> SearchOrchestrator -> LMSampler, CodecDecoder and one
VerifierScorer deployment per configured verifier, named `Verifier-<name>`. serve_config.yaml's
`deployments:` section scales each of them on its own by these names.
"""


from ray.serve import Application

from .config import LlasaAppArgs
from .http_ingress import HTTPIngress
from .orchestrator import SearchOrchestrator
from .stages import CodecDecoder, LMSampler, VerifierScorer


def verifier_deployment_name(verifier: str) -> str:
    return f"Verifier-{verifier}"


def build_app(args: LlasaAppArgs) -> Application:
    lm = LMSampler.bind(args.lm, args.tiny_cache_dir, args.torch_threads)
    codec = CodecDecoder.bind(args.codec, args.tiny_cache_dir, args.torch_threads)
    verifiers = {
        v.name: VerifierScorer.options(name=verifier_deployment_name(v.name)).bind(v, args.verifier_batch,
                                                                                   args.torch_threads)
        for v in args.verifiers
    }
    # Speaker and emotion verifiers judge a voice, which the end of a partial candidate shows as
    # well as all of it; ASR must hear every word it checks.
    process_windows = {v.name: args.defaults.process_window_seconds for v in args.verifiers
                       if v.kind in ("speaker", "emotion")}
    orchestrator = SearchOrchestrator.bind(lm, codec, verifiers, args.lm, args.tiny_cache_dir, args.resilience,
                                           args.codec, process_windows, args.judge, args.timestamps_verifier)
    return HTTPIngress.bind(orchestrator, args, codec)  # saved voices are codec-encoded at upload
