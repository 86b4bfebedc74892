"""`llasa-bench`: benchmarks for researchers and operators.

    llasa-bench quality --sentences bench/sentences.txt --out out/quality \\
        --strategies best_of_n,beam,dvts,prm_orm --budgets 1,2,4,8
    llasa-bench load --target localhost:9000 --sentences bench/sentences.txt --out out/load \
        --mode closed --concurrency 1,4,8
    llasa-bench tune --target localhost:9000 --sentences bench/sentences.txt --out out/tune --rate 2
"""

from __future__ import annotations

import argparse


def quality_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sentences", required=True, help="text file: one sentence a line "
                        "(or text<TAB>reference.wav<TAB>reference transcript)")
    parser.add_argument("--out", required=True, help="folder for CSV, JSON and PNG")
    parser.add_argument("--strategies", default="best_of_n,beam,dvts,prm_orm")
    parser.add_argument("--budgets", default="1,2,4,8", help="values of N")
    parser.add_argument("--beam-width", type=int, default=2, help="M of the tree searches")
    parser.add_argument("--step-tokens", type=int, default=50, help="speech tokens per search step")
    parser.add_argument("--prm-steps", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=10.0, help="longest speech per candidate")
    parser.add_argument("--target", help="a running service's gRPC address (else: in process)")
    parser.add_argument("--model", help="in process: Llasa checkpoint, hub id or path")
    parser.add_argument("--codec", help="in process: codec checkpoint, hub id or path")
    parser.add_argument("--verifier-asr", default="faster-whisper", help="ASR backend of the search's verifier")
    parser.add_argument("--process-verifier", help="verifier steering tree searches "
                        "(default: speaker with a reference voice, else asr)")
    parser.add_argument("--outcome-verifier", default="asr")
    parser.add_argument("--eval-asr", default="faster-whisper,pocketsphinx",
                        help="ASR backends that measure the chosen audio")
    parser.add_argument("--seed", type=int, default=0)


def request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="localhost:9000", help="gRPC address of the service")
    parser.add_argument("--sentences", required=True, help="text file, one request text a line")
    parser.add_argument("--out", required=True, help="folder for CSV, JSON and PNG")
    parser.add_argument("--strategy", default="best_of_n")
    parser.add_argument("-n", type=int, default=1)
    parser.add_argument("--beam-width", type=int)
    parser.add_argument("--max-speech-tokens", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="client deadline per request, seconds")


def load_arguments(parser: argparse.ArgumentParser) -> None:
    request_arguments(parser)
    parser.add_argument("--mode", choices=["open", "closed"], default="closed")
    parser.add_argument("--rates", default="0.5,1,2", help="open loop: offered requests/s, one run each")
    parser.add_argument("--duration", type=float, default=20.0, help="open loop: seconds per rate")
    parser.add_argument("--concurrency", default="1,4,8", help="closed loop: requests in flight, one run each")
    parser.add_argument("--requests", type=int, default=16, help="closed loop: requests per run")
    parser.add_argument("--metrics-url", help="Ray's Prometheus endpoint, e.g. http://127.0.0.1:8080/metrics")


def tune_arguments(parser: argparse.ArgumentParser) -> None:
    request_arguments(parser)
    parser.add_argument("--rate", type=float, required=True, help="target requests/s")
    parser.add_argument("--utilisation", type=float, default=0.7, help="target busy fraction per replica")
    parser.add_argument("--probe-requests", type=int, default=3, help="requests at concurrency 1 to measure demand")
    parser.add_argument("--batch", type=int, default=8, help="concurrent calls to measure batching gain")
    parser.add_argument("--orchestrator-slots", type=int, default=8,
                        help="max_ongoing_requests of one SearchOrchestrator replica")
    parser.add_argument("--autoscaling", action="store_true",
                        help="codec and verifiers autoscale up to the recommended replicas, not fixed counts")
    parser.add_argument("--config", default="serve_config.yaml",
                        help="the service's config: written with the recommendation as serve_config.tuned.yaml")
    parser.add_argument("--verify-concurrency", type=int, default=8)
    parser.add_argument("--verify-requests", type=int, default=16)
    parser.add_argument("--ray-address", default="auto", help="the Ray cluster the service runs on")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llasa-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    quality_arguments(commands.add_parser("quality", help="quality against inference compute"))
    load_arguments(commands.add_parser("load", help="latency and throughput under gRPC load"))
    tune_arguments(commands.add_parser("tune", help="replicas per stage for a target load"))
    args = parser.parse_args(argv)
    if args.command == "quality":
        from llasa_bench.quality import run
    elif args.command == "load":
        from llasa_bench.load import run
    else:
        from llasa_bench.tune import run
    run(args)


if __name__ == "__main__":
    main()
