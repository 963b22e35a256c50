"""Packaging: the shipped model folder, console scripts, and no torch in the runtime."""

from __future__ import annotations

import importlib
import importlib.resources
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_models_is_a_package_folder() -> None:
    models = importlib.resources.files("mer_live.models")
    assert models.is_dir()


def test_default_model_loads_when_shipped() -> None:
    from mer_live import Model, default_model_path

    path = default_model_path()
    if not path.is_file():
        pytest.skip("models/mer-default.onnx is not shipped yet")
    model = Model.load(provider="cpu")
    assert model.sample_rate >= 8000
    out = model.predict(__import__("numpy").zeros((2, model.window_samples), "float32"))
    assert out.shape == (2, 2)
    assert ((out >= 0) & (out <= 1)).all()


def test_console_scripts_point_at_callables() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"mer-live", "mer-analyze", "mer-train"}
    for name, target in scripts.items():
        module, func = target.split(":")
        if module.startswith("mer_train"):
            if not (ROOT / "train" / "cli.py").is_file():
                continue  # the training package lands separately
        mod = importlib.import_module(module)
        assert callable(getattr(mod, func)), name


def test_runtime_never_imports_torch() -> None:
    """A live machine has only onnxruntime: importing every runtime module must not pull torch."""
    code = (
        "import importlib, pkgutil, sys, mer_live\n"
        "for m in pkgutil.walk_packages(mer_live.__path__, 'mer_live.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "print(len(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0"


def test_version_matches_pyproject() -> None:
    import mer_live

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert mer_live.__version__ == meta["version"]


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_test_command_is_what_ci_runs() -> None:
    """.ci/run takes the line two below the marker: it must be a command that installs and tests."""
    lines = _readme().splitlines()
    i = lines.index("<!-- test-command -->")
    assert lines[i + 1].startswith("```")
    cmd = lines[i + 2]
    assert "pip install" in cmd and "pytest" in cmd, cmd
    assert "<!-- test-command -->" in (ROOT / ".ci" / "run").read_text()


def test_readme_osc_table_matches_what_is_sent() -> None:
    """The README's address table lists exactly the addresses osc.py sends, with their types."""
    import re

    from pythonosc.osc_message import OscMessage

    from mer_live.live.records import EVENT_KINDS, Estimate, Event
    from mer_live.outputs.osc import build_messages, event_message

    est = Estimate(t=1.0, wall=0.0, arousal_raw=0.7, valence_raw=0.3, arousal=0.6, valence=0.4,
                   level_rms_db=-20.0, level_peak_db=-6.0, silent=False, clipping=False, input_ok=True,
                   bad_samples=0, model_ms=1.0, latency_ms=10.0, overflows=0, hops_skipped=0, bpm=120.0)
    sent = {}
    events = [event_message(Event(kind, 1, 1.0, 0.0), "/mer") for kind in EVENT_KINDS]
    for d in build_messages(est, "/mer", "01", heartbeat=1, beat_phase=0.25) + events:
        m = OscMessage(d)
        sent[m.address] = "".join("f" if isinstance(p, float) else "i" for p in m.params)
    section = _readme().split("## OSC address scheme", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`/mer/"):
            for addr in re.findall(r"`(/mer/[a-z_0-9]+)`", cells[0]):
                documented[addr] = cells[1].replace(" ", "")
    assert documented == sent


def test_onnxruntime_comes_from_exactly_one_extra() -> None:
    """onnxruntime and onnxruntime-gpu install the same module: neither is a plain dependency,
    [cpu] brings the CPU build and [gpu] the CUDA one with its CUDA/cuDNN wheels."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in meta["dependencies"] if d.lower().startswith("onnxruntime")]
    extras = meta["optional-dependencies"]
    assert [d for d in extras["cpu"] if d.startswith("onnxruntime")] == ["onnxruntime>=1.17"]
    gpu = [d for d in extras["gpu"] if d.startswith("onnxruntime")]
    assert len(gpu) == 1 and gpu[0].startswith("onnxruntime-gpu[cuda,cudnn]")
    for name, deps in extras.items():
        if name not in ("cpu", "gpu"):
            assert not [d for d in deps if d.startswith("onnxruntime")], name


def test_without_onnxruntime_mer_live_says_which_extra_to_install(tmp_path: Path, loudness_model: Path
                                                                   ) -> None:
    """An environment with neither extra: one line naming the fix, exit 2 (as any unusable model), no
    traceback."""
    block = tmp_path / "sitecustomize.py"
    block.write_text("import sys\nsys.modules['onnxruntime'] = None  # as if it were not installed\n")
    import os

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-m", "mer_live", "--demo", "--headless", "--duration", "1",
                          "--model", str(loudness_model)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("mer-live: error: onnxruntime is not installed")
    assert "pip install 'mer-live[cpu]'" in lines[0]
