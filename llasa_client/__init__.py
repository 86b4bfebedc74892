"""Python client of the Llasa TTS gRPC service (llasa.tts.v1) and the `llasa-tts` CLI."""

from .client import SynthesisOptions, TTSClient, TTSError

__all__ = ["SynthesisOptions", "TTSClient", "TTSError"]
