"""`llasa-tts`: call the Llasa TTS service from a shell.

  llasa-tts synthesize "Hello" -o hello.wav --strategy beam -n 8 --beam-width 2
  llasa-tts describe

`synthesize` uses the streaming call, shows a line per search step on stderr, writes the audio
and a JSON report (scores of every kept candidate, compute account, timings) next to it. With
`--stream-raw PATH` (`-`: stdout) it also writes the audio as it arrives, raw mono float32 at
16 kHz, e.g. `llasa-tts synthesize "Hello" --stream-raw - | aplay -f FLOAT_LE -r 16000 -c 1`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from google.protobuf.json_format import MessageToDict

from .client import (AGGREGATIONS, API_KEY_ENV, DEFAULT_ADDRESS, FORMATS, STRATEGIES, SynthesisOptions, TTSClient,
                     TTSError)


def _weights(specs: list[str]) -> dict[str, float]:
    """["asr=1", "speaker"] -> {"asr": 1.0, "speaker": 1.0}"""
    out = {}
    for spec in specs:
        name, _, weight = spec.partition("=")
        out[name] = float(weight) if weight else 1.0
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llasa-tts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the gRPC proxy")
    parser.add_argument("--api-key", help=f"API key for a server that requires one (default: ${API_KEY_ENV})")
    parser.add_argument("--tls", action="store_true", help="speak TLS (a TLS sidecar in front of the proxy)")
    parser.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate (implies --tls)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("describe", help="print the server's models, verifiers, limits and defaults as JSON")
    s = commands.add_parser("synthesize", help="synthesise speech and write a WAV and a JSON report")
    s.add_argument("text")
    s.add_argument("-o", "--output", default="out.wav", help="audio file to write")
    s.add_argument("--report", help="JSON report path (default: the output with .json)")
    s.add_argument("--strategy", choices=sorted(STRATEGIES))
    s.add_argument("-n", type=int, help="candidates alive at once (the budget)")
    s.add_argument("--beam-width", type=int, help="children per kept candidate")
    s.add_argument("--step-tokens", type=int, help="speech tokens per search step (50 = 1 s)")
    s.add_argument("--prm-steps", type=int)
    s.add_argument("--aggregation", choices=sorted(AGGREGATIONS))
    s.add_argument("--process-verifier", action="append", default=[], metavar="NAME[=WEIGHT]")
    s.add_argument("--outcome-verifier", action="append", default=[], metavar="NAME[=WEIGHT]")
    s.add_argument("--max-speech-tokens", type=int,
                   help="cap on generated speech tokens (50 = 1 s); default: twice the text's estimated speech, "
                        "at least 2 s, within the server's default cap")
    s.add_argument("--temperature", type=float)
    s.add_argument("--top-p", type=float)
    s.add_argument("--top-k", type=int)
    s.add_argument("--repetition-penalty", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--reference", help="reference voice file (WAV/FLAC/OGG) to clone")
    s.add_argument("--reference-text", help="what the reference voice says")
    s.add_argument("--voice", help="a saved voice's name (see `voices`) to clone instead of --reference")
    s.add_argument("--language", default="en")
    s.add_argument("--format", choices=sorted(FORMATS), default="wav")
    s.add_argument("--timeout", type=float, help="server-side timeout in seconds")
    s.add_argument("--allow-partial-verifiers", action="store_true",
                   help="if a verifier stays down, go on with the others (the report says which scored)")
    s.add_argument("--return-scores", action="store_true",
                   help="score the answer even at n = 1 (otherwise n = 1 runs no verifier)")
    s.add_argument("--word-timestamps", action="store_true",
                   help="each word's start and end in the chosen audio (in the JSON report's `words`)")
    s.add_argument("--judge", action="store_true", help="the server's independent judge ASR scores the answer")
    s.add_argument("--text-has-tags", action="store_true",
                   help="the text marks non-speech tags such as [laughs]: the ASR does not expect them spoken")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.add_argument("--stream-raw", metavar="PATH",
                   help="also write the audio as it arrives: raw float32 mono 16 kHz samples, to PATH or - (stdout)")
    v = commands.add_parser("voices", help="saved voices: list, show, create or delete (prints JSON)")
    v.add_argument("action", choices=["list", "get", "create", "delete"])
    v.add_argument("name", nargs="?", help="the voice (get, create, delete)")
    v.add_argument("--audio", help="create: the voice's audio file (WAV/FLAC/OGG)")
    v.add_argument("--transcript", help="create: what the audio says")
    return parser


def _voices(client: TTSClient, args) -> None:
    if args.action != "list" and not args.name:
        raise SystemExit(f"llasa-tts voices {args.action}: name the voice")
    if args.action == "create" and not (args.audio and args.transcript):
        raise SystemExit("llasa-tts voices create: send --audio FILE and --transcript TEXT")
    if args.action == "list":
        result = {"voices": [MessageToDict(v) for v in client.list_voices()]}
    elif args.action == "get":
        result = MessageToDict(client.get_voice(args.name))
    elif args.action == "create":
        result = MessageToDict(client.create_voice(args.name, args.audio, args.transcript))
    else:
        client.delete_voice(args.name)
        result = {"voiceId": args.name, "deleted": True}
    print(json.dumps(result, indent=2))


def _options(args) -> SynthesisOptions:
    return SynthesisOptions(
        strategy=args.strategy, n=args.n, beam_width=args.beam_width, step_tokens=args.step_tokens,
        prm_steps=args.prm_steps, aggregation=args.aggregation,
        process_verifiers=_weights(args.process_verifier), outcome_verifiers=_weights(args.outcome_verifier),
        max_speech_tokens=args.max_speech_tokens, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed,
        reference_audio=args.reference, reference_text=args.reference_text, voice_id=args.voice,
        language=args.language,
        output_format=args.format, timeout_seconds=args.timeout, allow_partial_verifiers=args.allow_partial_verifiers,
        return_scores=args.return_scores, word_timestamps=args.word_timestamps, judge=args.judge,
        text_has_tags=args.text_has_tags,
    )


def _show_progress(progress) -> None:
    best = f"{progress.best_score:.3f}" if progress.HasField("best_score") else "-"
    print(f"step {progress.step}: {progress.live} live, {progress.finished} finished, best score {best}, "
          f"{progress.lm_generated_tokens} tokens, {progress.elapsed_seconds:.1f} s", file=sys.stderr)


def _raw_sink(path: str | None):
    """Where streamed audio goes: nothing, stdout's bytes, or a file."""
    if path is None:
        return contextlib.nullcontext(None)
    if path == "-":
        return contextlib.nullcontext(sys.stdout.buffer)
    return open(path, "wb")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with TTSClient(args.address, api_key=args.api_key, tls=args.tls, root_certificates=args.ca_cert) as client:
            if args.command == "describe":
                print(json.dumps(MessageToDict(client.describe()), indent=2))
                return 0
            if args.command == "voices":
                _voices(client, args)
                return 0
            with _raw_sink(args.stream_raw) as sink:
                response = client.synthesize_with_progress(
                    args.text, _options(args), on_progress=None if args.quiet else _show_progress,
                    on_audio=(lambda chunk: (sink.write(chunk.pcm_f32le), sink.flush())) if sink else None)
    except TTSError as err:
        print(f"llasa-tts: {err}", file=sys.stderr)
        return 1
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(response.audio)
    report = MessageToDict(response, always_print_fields_with_no_presence=True)
    report.pop("audio")
    report_path = Path(args.report) if args.report else output.with_suffix(".json")
    report_path.write_text(json.dumps(report, indent=2))
    account = response.account
    print(json.dumps({
        "output": str(output), "report": str(report_path), "audio_seconds": round(response.audio_seconds, 3),
        "strategy": response.strategy, "chosen": response.chosen.id, "final_score": response.chosen.final_score
        if response.chosen.HasField("final_score") else None, "candidates": len(response.candidates),
        "lm_prefill_tokens": account.lm_prefill_tokens, "lm_generated_tokens": account.lm_generated_tokens,
        "total_seconds": round(response.timings.total_seconds, 3),
        "verifiers_used": list(response.verifiers_used),
        "verifiers_failed": {f.verifier: f.reason for f in response.verifiers_failed},
    }), file=sys.stderr if args.stream_raw == "-" else sys.stdout)  # stdout may carry the raw audio
    return 0


if __name__ == "__main__":
    sys.exit(main())
