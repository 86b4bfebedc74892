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


def pytest_collection_modifyitems(items):
    """Tests that need no Ray cluster first, then those that start their own (`own_cluster`), then
    those on the shared service: once up, its idle cluster keeps 0.3 of the 2 cores busy (0.59 with
    Serve's default intervals: tests/serve_support.py), which slowed every test that ran beside it
    and, in CI, helped push the suite past 25 minutes."""
    def group(item) -> int:
        if "service" in item.fixturenames:
            return 2
        return 1 if item.get_closest_marker("own_cluster") else 0

    items.sort(key=group)  # stable: file order within a group


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
