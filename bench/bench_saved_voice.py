"""A saved voice against the same reference sent inline: request size and wall time, side by side
in one run.

    .venv/bin/python bench/bench_saved_voice.py [--repeats 5] [--seconds 10]

It starts its own `serve run serve_config.yaml` (the embedded demo model, free ports) on a private
Ray cluster, uploads a piper reference voice once through POST /v1/audio/voices, then alternates
the same seeded search with the reference inline (gRPC, the only API that takes one) and by name
(HTTP `voice`). Both searches get the same reference samples, so both produce the same audio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import committed_service, speech_wav  # noqa: E402

from llasa_client import SynthesisOptions, TTSClient  # noqa: E402
from llasa_client.client import build_request  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."
SENTENCE = "This is my voice, speaking clearly and slowly, so that the model can learn how I sound. "
SEARCH = {"n": 2, "max_speech_tokens": 100, "seed": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10, help="about how long the reference voice is")
    args = parser.parse_args()

    transcript = (SENTENCE * 10)[: int(len(SENTENCE) * args.seconds / 5)].rsplit(" ", 1)[0] + "."
    reference = speech_wav(transcript)  # 22.05 kHz 16-bit WAV, as a phone or browser would record
    work = Path(tempfile.mkdtemp(prefix="bench-voice-"))
    with committed_service(work, voice_store=str(work / "voices")) as service:
        with TTSClient(service.address) as grpc_client, httpx.Client(base_url=service.url, timeout=300) as http:
            started = time.perf_counter()
            saved = http.post("/v1/audio/voices", data={"name": "bench", "transcript": transcript},
                              files={"audio": ("voice.wav", reference, "audio/wav")})
            upload_seconds = time.perf_counter() - started
            saved.raise_for_status()
            options = SynthesisOptions(reference_audio=reference, reference_text=transcript, **SEARCH)
            inline_bytes = build_request(TEXT, options).ByteSize()
            body = {"model": "llasa", "input": TEXT, "voice": "bench", "response_format": "wav", "search": SEARCH}
            named_bytes = len(json.dumps(body).encode())
            inline, named, encode = [], [], []
            grpc_client.synthesize(TEXT, options)  # warm both paths
            http.post("/v1/audio/speech", json=body).raise_for_status()
            for _ in range(args.repeats):
                t = time.perf_counter()
                response = grpc_client.synthesize(TEXT, options)
                inline.append(time.perf_counter() - t)
                encode.append(response.timings.reference_encode_seconds)
                t = time.perf_counter()
                http.post("/v1/audio/speech", json=body).raise_for_status()
                named.append(time.perf_counter() - t)
    voice = saved.json()
    print(f"serve_config.yaml (embedded demo model), {os.cpu_count()} CPU cores; reference {voice['seconds']:.1f} s "
          f"({len(reference)} bytes WAV, {voice['codes']} codec tokens); search {SEARCH}; {args.repeats} repeats")
    print(f"upload once (validate, codec-encode, store): {upload_seconds:.2f} s")
    print(f"request size: inline {inline_bytes} bytes (gRPC), saved voice {named_bytes} bytes (HTTP JSON): "
          f"{inline_bytes / named_bytes:.0f}x smaller")
    print(f"wall median: inline {statistics.median(inline):.3f} s, saved voice {statistics.median(named):.3f} s "
          f"(ratio {statistics.median(named) / statistics.median(inline):.2f}); an inline reference is encoded on "
          f"every request ({statistics.median(encode):.3f} s median), a saved voice's codes are reused")


if __name__ == "__main__":
    main()
