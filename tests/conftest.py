"""Session-wide fixtures: tiny checkpoints in the real Llasa / X-codec2 formats, loaded once, and
the running service (tests/serve_support.py), started once for every test that asks for it."""

from __future__ import annotations

import pytest
import torch

from llasa_core.codec import XCodec2Codec
from llasa_core.lm import TransformersLM
from llasa_core.tiny_checkpoints import make_tiny_llasa, make_tiny_xcodec2
from serve_support import service  # noqa: F401  (one Ray cluster + `serve run` per test session)

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_llasa_path(tmp_path_factory):
    return make_tiny_llasa(tmp_path_factory.mktemp("tiny-llasa"))


@pytest.fixture(scope="session")
def tiny_xcodec2_path(tmp_path_factory):
    return make_tiny_xcodec2(tmp_path_factory.mktemp("tiny-xcodec2"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_llasa_path):
    return TransformersLM(str(tiny_llasa_path))


@pytest.fixture(scope="session")
def tiny_codec(tiny_xcodec2_path):
    return XCodec2Codec(str(tiny_xcodec2_path))
