"""Shared fixtures. The PulseAudio null-sink fixture (`pulse`) lives in tests/audio.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.modelkit import make_loudness_model

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def loudness_model(tmp_path_factory) -> Path:
    """A real ONNX model (16 kHz, 1 s window) whose arousal rises with loudness."""
    return make_loudness_model(tmp_path_factory.mktemp("models") / "loudness.onnx")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
