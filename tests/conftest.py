"""Shared fixtures. The PulseAudio null-sink fixture (`pulse`) lives in tests/audio.py."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

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


def in_ci() -> bool:
    """True on CI (``CI=true``), where every system part is installed by .ci/run."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(why: str) -> None:
    """A system part a test needs is absent: skip here, but FAIL on CI, where .ci/run installs
    everything, so a broken install can never turn the suite green by skipping."""
    if in_ci():
        pytest.fail(f"CI must have this: {why}")
    pytest.skip(why, allow_module_level=True)


def need_module(name: str, extra: str) -> Any:
    """The imported module ``name``, or ``missing()`` naming the pip extra that installs it (CI
    installs every extra, so a module missing there is a broken install, not a reason to skip)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"{name} is not importable ({e}): pip install -e '.[{extra}]'")


def need_tool(name: str, package: str | None = None) -> str:
    """The path of command ``name``, or ``missing()`` naming the Debian package that brings it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian: {package or name})")
    return str(path)
