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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that leaves a non-daemon thread running keeps this process alive after the summary
    (issue #29: once for 9 minutes, beyond any per-test timeout): name the threads and exit anyway,
    failed (``mer_live.live.stopping.exit_anyway`` at interpreter shutdown)."""
    import threading
    import time

    from mer_live.live.stopping import exit_anyway

    main = threading.main_thread()
    left = [t for t in threading.enumerate() if t is not main and not t.daemon]
    end = time.monotonic() + 2.0
    for t in left:
        t.join(max(0.0, end - time.monotonic()))
    left = [t for t in left if t.is_alive()]
    if left:
        line = (f"tests left non-daemon threads running: {', '.join(repr(t.name) for t in left)}; "
                "exiting anyway, failed")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line, flush=True)
        exit_anyway(int(exitstatus) or 1)
