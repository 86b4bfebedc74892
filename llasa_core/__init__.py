"""Llasa text-to-speech with inference-time search: model, codec, prompt format and search."""
